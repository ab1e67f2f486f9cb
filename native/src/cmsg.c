/* SCM_RIGHTS control data (see cmsg.h). */
#include "cmsg.h"

#include <string.h>

size_t pvx_cmsg_collect_fds(const struct msghdr *msg, int *fds, size_t max) {
  size_t count = 0;
  if (msg->msg_control == NULL) return 0;
  const char *end = (const char *)msg->msg_control + msg->msg_controllen;
  for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(msg); cmsg != NULL; cmsg = CMSG_NXTHDR((struct msghdr *)msg, cmsg)) {
    /* Only the kernel writes control data, but the bound of the copy must not depend on it being right: a header
     * shorter than itself, or longer than what is left, ends the walk. */
    if (cmsg->cmsg_len < CMSG_LEN(0) || cmsg->cmsg_len > (size_t)(end - (const char *)cmsg)) break;
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    if (n > max - count) n = max - count;
    memcpy(fds + count, CMSG_DATA(cmsg), n * sizeof(int));
    count += n;
  }
  return count;
}

size_t pvx_cmsg_put_fds(void *control, size_t space, const int *fds, size_t count) {
  if (count == 0 || CMSG_SPACE(sizeof(int) * count) > space) return 0;
  struct msghdr msg = {.msg_control = control, .msg_controllen = CMSG_SPACE(sizeof(int) * count)};
  memset(control, 0, msg.msg_controllen);
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int) * count);
  memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * count);
  return msg.msg_controllen;
}
