/* pin.c - keeps the C core loaded until the process ends (see pin.h). dladdr and
 * RTLD_NODELETE are GNU (and BSD) extensions. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>

#include "pin.h"

static pthread_once_t pin_once = PTHREAD_ONCE_INIT;

static void pin(void)
{
    Dl_info info;
    /* The handle is kept on purpose: its reference is what keeps the object mapped.
     * RTLD_NOLOAD: only an object already loaded is pinned, no file is ever opened (linked
     * into an executable, dli_fname is argv[0], which names any file). */
    if (dladdr((void *)&eip_pin_self, &info) != 0 && info.dli_fname != NULL)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

void eip_pin_self(void)
{
    (void)pthread_once(&pin_once, pin);
}
