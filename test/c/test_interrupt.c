/* test_interrupt.c - the signals the eip command catches during a batch (src/interrupt.c):
 * SIGINT, SIGTERM and SIGHUP counted with the last one's number, SIGPIPE ignored so that a
 * write to a closed pipe fails with EPIPE, and every handler put back when catching ends. */
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "ctest.h"
#include "interrupt.h"

static volatile sig_atomic_t mine;
static void my_handler(int sig) { mine = sig; }

/* The handler sig has now. */
static void (*handler_of(int sig))(int)
{
    struct sigaction sa;
    sigaction(sig, NULL, &sa);
    return sa.sa_handler;
}

int main(void)
{
    struct sigaction sa;
    int fds[2];
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    size_t i;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = my_handler;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < 3; i++)
        sigaction(sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_DFL);

    CHECK(eip_interrupts() == 0 && eip_interrupt_signal() == 0, "nothing counted before catching");
    CHECK(eip_interrupt_catch(1) == 0, "catching starts");
    CHECK(eip_interrupt_catch(1) == 0, "a second start changes nothing");
    CHECK(eip_interrupts() == 0, "the count starts at 0");
    CHECK(!eip_interrupt_aborting(), "no request aborted before a signal");

    raise(SIGTERM);
    CHECK(eip_interrupts() == 1, "SIGTERM counted: %d", eip_interrupts());
    CHECK(eip_interrupt_signal() == SIGTERM, "the last signal: %d", eip_interrupt_signal());
    CHECK(!eip_interrupt_aborting(), "the first signal stops sending, aborts nothing");
    eip_interrupt_abort_at(1);
    CHECK(eip_interrupt_aborting(), "abort_at 1: the first aborts");
    eip_interrupt_abort_at(2);
    raise(SIGHUP);
    CHECK(eip_interrupts() == 2 && eip_interrupt_signal() == SIGHUP, "SIGHUP counted");
    CHECK(eip_interrupt_aborting(), "the second aborts a request in flight");
    raise(SIGINT);
    CHECK(eip_interrupts() == 3 && eip_interrupt_signal() == SIGINT, "SIGINT counted");
    CHECK(mine == 0, "the caller's handlers were not called while catching: %d", (int)mine);

    /* A reader gone: the write fails with EPIPE, the process lives on. */
    CHECK(pipe(fds) == 0, "pipe");
    close(fds[0]);
    errno = 0;
    CHECK(write(fds[1], "x", 1) == -1 && errno == EPIPE, "write to a closed pipe: errno %d", errno);
    close(fds[1]);

    CHECK(eip_interrupt_catch(0) == 0, "catching ends");
    CHECK(eip_interrupts() == 0 && eip_interrupt_signal() == 0, "nothing counted after");
    for (i = 0; i < 3; i++)
        CHECK(handler_of(sigs[i]) == my_handler, "signal %d has its handler back", sigs[i]);
    CHECK(handler_of(SIGPIPE) == SIG_DFL, "SIGPIPE has its default back");
    raise(SIGTERM);
    CHECK(mine == SIGTERM, "the caller's handler is called again: %d", (int)mine);
    CHECK(eip_interrupt_catch(0) == 0, "a second end changes nothing");

    /* A signal ignored when catching begins (nohup's SIGHUP) stays ignored, and is not counted. */
    signal(SIGHUP, SIG_IGN);
    CHECK(eip_interrupt_catch(1) == 0, "catching starts with SIGHUP ignored");
    CHECK(handler_of(SIGHUP) == SIG_IGN, "SIGHUP still ignored while catching");
    raise(SIGHUP);
    CHECK(eip_interrupts() == 0, "an ignored SIGHUP is not counted: %d", eip_interrupts());
    raise(SIGTERM);
    CHECK(eip_interrupts() == 1 && eip_interrupt_signal() == SIGTERM, "SIGTERM is counted all the same");
    CHECK(eip_interrupt_catch(0) == 0, "catching ends");
    CHECK(handler_of(SIGHUP) == SIG_IGN, "SIGHUP still ignored after");
    CHECK(handler_of(SIGTERM) == my_handler, "SIGTERM has its handler back");
    sigaction(SIGHUP, &sa, NULL);

    /* Caught again: counting starts anew. */
    CHECK(eip_interrupt_catch(1) == 0 && eip_interrupts() == 0, "caught again, from 0");
    raise(SIGINT);
    CHECK(eip_interrupts() == 1 && eip_interrupt_signal() == SIGINT, "counted again");
    CHECK(!eip_interrupt_aborting(), "catching again aborts at the second signal again");
    CHECK(eip_interrupt_catch(0) == 0, "ends again");
    CHECK(!eip_interrupt_aborting(), "nothing aborted when not catching");
    return CTEST_END("interrupt");
}
