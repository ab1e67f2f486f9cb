/* One non-blocking recvmsg of bytes and their fds (receive.h). */
#include "receive.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

void pvx_close_fds(const int *fds, size_t count) {
  for (size_t i = 0; i < count; i++) close(fds[i]);
}

/* Every read lands in this per-thread buffer (each Node environment runs on its own thread): fdio.c copies
 * it into JavaScript memory (measured faster than handing malloc'd memory to an external Buffer, whose
 * finalizer costs more than the copy; a short read never pins a whole read size), relay.c sends it on. */
static _Thread_local char *recv_scratch;
static _Thread_local size_t recv_scratch_size;

static char *recv_buffer(size_t size) {
  if (size > recv_scratch_size) {
    char *grown = realloc(recv_scratch, size);
    if (grown == NULL) return NULL;
    recv_scratch = grown;
    recv_scratch_size = size;
  }
  return recv_scratch;
}

/* Runs on the environment's own thread when it shuts down (a worker exiting). */
void pvx_free_receive_buffer(void *unused) {
  (void)unused;
  free(recv_scratch);
  recv_scratch = NULL;
  recv_scratch_size = 0;
}

int pvx_receive(int fd, size_t max_bytes, pvx_received *out) {
  char *bytes = recv_buffer(max_bytes);
  if (bytes == NULL) return ENOMEM;
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * PVX_SCM_MAX_FD)];
  } control;
  struct iovec iov = {.iov_base = bytes, .iov_len = max_bytes};
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? PVX_WOULD_BLOCK : errno;
  out->data = bytes;
  out->bytes = n;
  out->fd_count = pvx_cmsg_collect_fds(&msg, out->fds, PVX_SCM_MAX_FD);
  if (msg.msg_flags & MSG_CTRUNC) {
    pvx_close_fds(out->fds, out->fd_count);
    return PVX_CTRUNC;
  }
  return PVX_RECEIVED;
}

