/* tcpbytes.h - the bytes a TCP socket has received, as the kernel counts them (Linux). */
#ifndef EIP_TCPBYTES_H
#define EIP_TCPBYTES_H

/* The payload bytes socket fd has received since it was opened (TCP_INFO's
 * tcpi_bytes_received: every byte the peer sent that arrived, whether or not the reader has
 * taken it yet), in *out: 0; -1 where the kernel does not say (not Linux, a kernel older than
 * 4.1, not a TCP socket). http.c's low-speed check counts with it: libcurl counts a head's
 * bytes only once each line is whole. */
int eip_tcp_bytes_received(int fd, unsigned long long *out);

/* The same count, and whether the connection is still established (1) or not (0: the peer sent
 * its end or a reset, or it failed), in one look at the kernel: 0, or -1 as above. An idle
 * kept-alive connection that is established and received nothing new needs no poll. */
int eip_tcp_bytes_state(int fd, unsigned long long *out, int *established);

/* The bytes socket fd received that nobody has read yet (FIONREAD), in *out: 0; -1 where the
 * kernel does not say. The count above less these is what was read. */
int eip_tcp_bytes_unread(int fd, unsigned long long *out);

#endif
