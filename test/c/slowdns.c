/* slowdns.c - LD_PRELOAD shim for spec/dns_timeout_spec.lua: a DNS server that never answers,
 * without a network, root, or a changed /etc/resolv.conf.
 *
 * getaddrinfo for a name ending in ".slow.test" sleeps EIP_SLOWDNS_SECONDS (default 6), as glibc
 * does while it waits on an unresponsive server, then fails as glibc then does (EAI_AGAIN).
 * A name ending in ".late.test" sleeps as long, then resolves as 127.0.0.1: a lookup that takes
 * its time and then succeeds, so that a request is still connecting for that long (a caught
 * Ctrl-C meanwhile must hold it back: spec/dns_timeout_spec.lua).
 * Every other name goes to the real getaddrinfo (the next definition, dlsym RTLD_NEXT). libcurl's
 * threaded resolver calls it in its own thread, so a call that ends at its timeout while the
 * sleep runs shows whether cleaning the transfer up waits for that thread.
 * With EIP_SLOWCONNECT_PORT set, a connect to that port of 127.0.0.1 returns only after
 * EIP_SLOWCONNECT_MS (default 200) ms: the connection is made meanwhile, and whatever a server
 * sends at once on it is there before the client looks at it (spec/early_bytes_spec.lua).
 * Built into build/slowdns.so (Makefile). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define SLOW_SUFFIX ".slow.test"
#define LATE_SUFFIX ".late.test"

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static int ends_with(const char *node, const char *suffix)
{
    size_t n, s = strlen(suffix);
    if (node == NULL)
        return 0;
    n = strlen(node);
    if (n > 0 && node[n - 1] == '.') /* a fully qualified "x.slow.test." */
        n--;
    return n >= s && strncmp(node + n - s, suffix, s) == 0;
}

static void wait_as_set(void)
{
    const char *env = getenv("EIP_SLOWDNS_SECONDS");
    struct timespec left = { env != NULL ? atoi(env) : 6, 0 };
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ; /* the whole wait, as a resolver's timeout is not cut short by a signal */
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
    getaddrinfo_fn real;
    if (ends_with(node, SLOW_SUFFIX)) {
        wait_as_set();
        return EAI_AGAIN;
    }
    real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (real == NULL)
        return EAI_SYSTEM;
    if (ends_with(node, LATE_SUFFIX)) {
        wait_as_set();
        return real("127.0.0.1", service, hints, res);
    }
    return real(node, service, hints, res);
}

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    connect_fn real = (connect_fn)dlsym(RTLD_NEXT, "connect");
    const char *port = getenv("EIP_SLOWCONNECT_PORT");
    int rc, saved;
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    rc = real(fd, addr, len);
    saved = errno;
    if (port != NULL && addr != NULL && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        if (ntohs(in->sin_port) == atoi(port) && ntohl(in->sin_addr.s_addr) == INADDR_LOOPBACK) {
            const char *ms = getenv("EIP_SLOWCONNECT_MS");
            long wait = ms != NULL ? atol(ms) : 200;
            struct timespec left = { wait / 1000, (wait % 1000) * 1000000L };
            while (nanosleep(&left, &left) != 0 && errno == EINTR)
                ;
        }
    }
    errno = saved;
    return rc;
}
