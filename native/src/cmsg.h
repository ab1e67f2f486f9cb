/* SCM_RIGHTS control data of fd-carrying messages: reading the fds a recvmsg brought, writing those a sendmsg
 * carries. Pure (no system calls), so the fuzz harnesses of test/fuzz/native/ build it alone. */
#ifndef PVX_CMSG_H
#define PVX_CMSG_H

#include <stddef.h>
#include <sys/socket.h>

/* The kernel's SCM_MAX_FD: the most fds one message can carry. */
#define PVX_SCM_MAX_FD 253

/* Copies the fds of every SCM_RIGHTS message in msg's control data to fds, in order, at most max; returns how
 * many. */
size_t pvx_cmsg_collect_fds(const struct msghdr *msg, int *fds, size_t max);

/* Writes one SCM_RIGHTS message carrying fds[0..count) into control (space bytes); returns the msg_controllen to
 * send with, or 0 if count is 0 or it does not fit. */
size_t pvx_cmsg_put_fds(void *control, size_t space, const int *fds, size_t count);

#endif
