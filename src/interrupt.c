/* interrupt.c - SIGINT, SIGTERM and SIGHUP as a polled count, SIGPIPE ignored. See interrupt.h. */
#include "interrupt.h"

#include <signal.h>
#include <string.h>

/* Written by the handler, read by the waits: the only type a handler may safely write. */
static volatile sig_atomic_t received;
static volatile sig_atomic_t last_signal;

/* The signals counted, and the handlers they had before. */
static const int counted[] = {SIGINT, SIGTERM, SIGHUP};
#define NCOUNTED (sizeof(counted) / sizeof(counted[0]))
static struct sigaction previous[NCOUNTED];
static int installed[NCOUNTED]; /* a signal ignored when catching began (nohup) is left ignored */
static struct sigaction previous_pipe;
static int catching;
static int abort_at = 2;

static void on_signal(int sig)
{
    last_signal = sig;
    if (received < 1000)
        received++;
}

/* Puts back the handlers of the first n counted signals, and SIGPIPE's when pipe is set.
 * 0, or -1 when one could not be put back. */
static int restore(size_t n, int pipe)
{
    int rc = 0;
    while (n > 0) {
        n--;
        if (installed[n] && sigaction(counted[n], &previous[n], NULL) != 0)
            rc = -1;
        installed[n] = 0;
    }
    if (pipe && sigaction(SIGPIPE, &previous_pipe, NULL) != 0)
        rc = -1;
    return rc;
}

int eip_interrupt_catch(int on)
{
    struct sigaction sa;
    if (on) {
        size_t i;
        if (catching)
            return 0;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; /* no SA_RESTART: poll and nanosleep return EINTR and we look */
        received = 0;
        last_signal = 0;
        abort_at = 2;
        for (i = 0; i < NCOUNTED; i++) {
            /* Ignored by whoever started us (nohup ignores SIGHUP): it stays ignored, as it
             * would without us. Not SIGINT under the standalone interpreters: lua.c and luajit.c
             * set a handler of their own for it before the script runs, so a shell's background
             * job (SIGINT ignored) is no longer seen as one here, and a Ctrl-C at its terminal
             * is counted, as in the foreground. */
            if (sigaction(counted[i], NULL, &previous[i]) != 0) {
                restore(i, 0);
                return -1;
            }
            installed[i] = previous[i].sa_handler != SIG_IGN;
            if (installed[i] && sigaction(counted[i], &sa, NULL) != 0) {
                installed[i] = 0;
                restore(i, 0);
                return -1;
            }
        }
        /* A reader that went away (`| head`) makes a write fail with EPIPE, which the caller
         * sees, instead of killing the process with requests in flight. */
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGPIPE, &sa, &previous_pipe) != 0) {
            restore(NCOUNTED, 0);
            return -1;
        }
        catching = 1;
        return 0;
    }
    if (!catching)
        return 0;
    catching = 0;
    received = 0;
    last_signal = 0;
    return restore(NCOUNTED, 1);
}

int eip_interrupts(void)
{
    return catching ? (int)received : 0;
}

int eip_interrupt_signal(void)
{
    return catching ? (int)last_signal : 0;
}

void eip_interrupt_abort_at(int n)
{
    abort_at = n > 0 ? n : 1;
}

int eip_interrupt_catching(void)
{
    return catching;
}

int eip_interrupt_aborting(void)
{
    return catching && (int)received >= abort_at;
}
