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
    /* The handle is kept on purpose: its reference is what keeps the object mapped. An
     * executable cannot be opened this way, and then nothing happens. */
    if (dladdr((void *)&eip_pin_self, &info) != 0 && info.dli_fname != NULL)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
}

void eip_pin_self(void)
{
    (void)pthread_once(&pin_once, pin);
}
