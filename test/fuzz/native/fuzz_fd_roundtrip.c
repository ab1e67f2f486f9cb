/* libFuzzer harness: fds through a real Unix socket pair with the addon's control-data code on both ends. The input
 * is a list of sends: how many bytes, how many fds, and for how many fds the receiver has room (so MSG_CTRUNC is
 * reached). Checked: bytes arrive whole, every fd that fits arrives (close-on-exec), a truncation is flagged and
 * delivers only what fit, and nothing leaks. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cmsg.h"

#define MAX_SEND_FDS 40
#define MAX_ROOM_FDS 48

static int open_fds(void) {
  int count = 0;
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) abort();
  while (readdir(dir) != NULL) count++;
  closedir(dir);
  return count;
}

static void check(int ok) {
  if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int before = open_fds();
  int pair[2];
  check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  int source = open("/dev/null", O_RDONLY | O_CLOEXEC);
  check(source >= 0);
  for (size_t at = 0; at + 3 <= size;) {
    size_t length = 1 + data[at] % 64;
    size_t count = data[at + 1] % (MAX_SEND_FDS + 1);
    size_t room = data[at + 2] % (MAX_ROOM_FDS + 1);
    at += 3;
    uint8_t payload[64];
    for (size_t i = 0; i < length; i++) payload[i] = at + i < size ? data[at + i] : (uint8_t)i;
    at += length;

    int fds[MAX_SEND_FDS];
    for (size_t i = 0; i < count; i++) check((fds[i] = dup(source)) >= 0);
    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE(sizeof(int) * MAX_SEND_FDS)];
    } out;
    struct iovec iov = {.iov_base = payload, .iov_len = length};
    struct msghdr sent = {.msg_iov = &iov, .msg_iovlen = 1};
    if (count > 0) {
      sent.msg_control = out.buf;
      sent.msg_controllen = pvx_cmsg_put_fds(out.buf, sizeof out.buf, fds, count);
      check(sent.msg_controllen == CMSG_SPACE(sizeof(int) * count));
    }
    check(sendmsg(pair[0], &sent, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)length);
    for (size_t i = 0; i < count; i++) close(fds[i]);

    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE(sizeof(int) * MAX_ROOM_FDS)];
    } in;
    uint8_t received[64];
    struct iovec into = {.iov_base = received, .iov_len = sizeof received};
    struct msghdr got = {.msg_iov = &into, .msg_iovlen = 1};
    if (room > 0) {
      got.msg_control = in.buf;
      got.msg_controllen = CMSG_SPACE(sizeof(int) * room);
    }
    check(recvmsg(pair[1], &got, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) == (ssize_t)length);
    check(memcmp(received, payload, length) == 0);
    int arrived[PVX_SCM_MAX_FD];
    size_t n = pvx_cmsg_collect_fds(&got, arrived, PVX_SCM_MAX_FD);
    int truncated = (got.msg_flags & MSG_CTRUNC) != 0;
    /* CMSG_SPACE rounds up, so a little room may take one fd more than `room` says. */
    check(truncated ? n < count : n == count);
    for (size_t i = 0; i < n; i++) {
      check((fcntl(arrived[i], F_GETFD) & FD_CLOEXEC) != 0);
      close(arrived[i]);
    }
  }
  close(source);
  close(pair[0]);
  close(pair[1]);
  check(open_fds() == before);
  return 0;
}
