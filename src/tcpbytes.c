/* tcpbytes.c - see tcpbytes.h. Its own file: <linux/tcp.h>, which has tcpi_bytes_received,
 * cannot be included beside glibc's <netinet/tcp.h>, whose struct tcp_info lacks it. */
#include "tcpbytes.h"

#include <stddef.h>
#include <sys/ioctl.h>

#ifdef __linux__
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* (include/net/tcp_states.h: not in the headers that can be included here) */
#define EIP_TCP_ESTABLISHED 1

int eip_tcp_bytes_state(int fd, unsigned long long *out, int *established)
{
    struct tcp_info info;
    socklen_t len = sizeof(info);
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
        return -1;
    /* (an older kernel fills less of the struct: the field must be in what it wrote) */
    if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(info.tcpi_bytes_received))
        return -1;
    *out = (unsigned long long)info.tcpi_bytes_received;
    *established = info.tcpi_state == EIP_TCP_ESTABLISHED;
    return 0;
}

int eip_tcp_bytes_unread(int fd, unsigned long long *out)
{
    int n = 0;
    if (fd < 0 || ioctl(fd, FIONREAD, &n) != 0 || n < 0)
        return -1;
    *out = (unsigned long long)n;
    return 0;
}

int eip_tcp_bytes_received(int fd, unsigned long long *out)
{
    int established;
    return eip_tcp_bytes_state(fd, out, &established);
}
#else
int eip_tcp_bytes_unread(int fd, unsigned long long *out)
{
    (void)fd;
    (void)out;
    return -1;
}

int eip_tcp_bytes_state(int fd, unsigned long long *out, int *established)
{
    (void)fd;
    (void)out;
    (void)established;
    return -1;
}

int eip_tcp_bytes_received(int fd, unsigned long long *out)
{
    (void)fd;
    (void)out;
    return -1;
}
#endif
