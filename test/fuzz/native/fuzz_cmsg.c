/* libFuzzer harness: pvx_cmsg_collect_fds on arbitrary control data, in a buffer of exactly the input's size (so
 * AddressSanitizer sees any read past it), as recvmsg could hand it over if the kernel were wrong. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* malloc'd, so aligned for struct cmsghdr; exactly size bytes, so a read past them is a report. */
  void *control = malloc(size == 0 ? 1 : size);
  if (control == NULL) return 0;
  memcpy(control, data, size);
  struct msghdr msg = {.msg_control = control, .msg_controllen = size};
  int fds[PVX_SCM_MAX_FD];
  size_t count = pvx_cmsg_collect_fds(&msg, fds, PVX_SCM_MAX_FD);
  if (count > PVX_SCM_MAX_FD) abort();
  /* Every fd collected was read from inside the control data. */
  for (size_t i = 0; i < count; i++)
    if (memmem(data, size, &fds[i], sizeof fds[i]) == NULL) abort();
  free(control);
  return 0;
}
