/* One non-blocking recvmsg of bytes and the fds that came with them, shared by the sockets served to
 * JavaScript (fdio.c) and the relays served in the addon (relay.c). */
#ifndef PVX_RECEIVE_H
#define PVX_RECEIVE_H

#include <stddef.h>
#include <sys/types.h>

#include "cmsg.h"

/* What one recvmsg brought. `data` is this thread's receive buffer: valid until the next pvx_receive. */
typedef struct {
  const char *data;
  ssize_t bytes; /* 0: end of stream */
  size_t fd_count;
  int fds[PVX_SCM_MAX_FD];
} pvx_received;

/* Status of pvx_receive(): the chunk arrived, nothing to read, or fds were lost (errno values otherwise). */
#define PVX_RECEIVED 0
#define PVX_WOULD_BLOCK (-1)
#define PVX_CTRUNC (-2)

/* One non-blocking recvmsg of at most max_bytes (fds close-on-exec). On PVX_CTRUNC the fds that did arrive
 * are already closed (their count stays in fd_count, for the message). */
int pvx_receive(int fd, size_t max_bytes, pvx_received *out);

/* Frees this thread's receive buffer (when its environment shuts down). */
void pvx_free_receive_buffer(void *unused);

void pvx_close_fds(const int *fds, size_t count);

#endif
