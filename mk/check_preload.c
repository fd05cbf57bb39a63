/* check_preload.c - LD_PRELOAD helper for `make check` (loaded into lua5.4 after the sanitizer
 * runtimes; the ASan runtime must come first in LD_PRELOAD).
 *
 * 1. It drops LD_PRELOAD from the environment as soon as it is loaded. lua5.4 is not
 *    instrumented, so the runtimes that the ASan build of eip/core.so needs have to be
 *    preloaded into it; but the spec suite runs nginx, sh, pgrep, kill and rm as children, and
 *    with the runtimes preloaded into them pgrep hangs and their own exit-time leak reports
 *    would be mixed with ours. The loader reads the variable only at exec time, so removing it
 *    here keeps lua5.4 instrumented and its children plain.
 * 2. It turns dlclose into a no-op. lua_close unloads every C module (eip.core, cjson,
 *    socket) before LeakSanitizer runs at exit; the stacks of leaks allocated in an unloaded
 *    module can no longer be symbolised ("<unknown module>"), so a leak of ours could neither
 *    be located nor told apart from one that a suppression is meant for.
 */
#include <stdlib.h>

int dlclose(void *handle);

__attribute__((constructor)) static void eip_check_unpreload(void)
{
    unsetenv("LD_PRELOAD");
}

int dlclose(void *handle)
{
    (void)handle;
    return 0; /* keep every module mapped until exit */
}
