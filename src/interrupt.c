/* interrupt.c - SIGINT as a polled count. See interrupt.h. */
#include "interrupt.h"

#include <signal.h>
#include <string.h>

/* Written by the handler, read by the waits: the only type a handler may safely write. */
static volatile sig_atomic_t received;
static struct sigaction previous;
static int catching;

static void on_sigint(int sig)
{
    (void)sig;
    if (received < 1000)
        received++;
}

int eip_interrupt_catch(int on)
{
    struct sigaction sa;
    if (on) {
        if (catching)
            return 0;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; /* no SA_RESTART: poll and nanosleep return EINTR and we look */
        received = 0;
        if (sigaction(SIGINT, &sa, &previous) != 0)
            return -1;
        catching = 1;
        return 0;
    }
    if (!catching)
        return 0;
    catching = 0;
    received = 0;
    return sigaction(SIGINT, &previous, NULL) != 0 ? -1 : 0;
}

int eip_interrupts(void)
{
    return catching ? (int)received : 0;
}
