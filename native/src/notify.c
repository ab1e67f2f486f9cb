/* sd_notify(3) without libsystemd: one datagram to the service manager's AF_UNIX socket ($NOTIFY_SOCKET).
 * Node's dgram module has no AF_UNIX datagram sockets, and the address may be abstract ("@name"), so this is the
 * addon's. The send is non-blocking: a manager that does not read never stalls the daemon (EAGAIN is reported). */
#include "addon.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* notify(address: string, message: string): void. address: a path, or "@name" for an abstract socket. */
static napi_value notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char address[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  char message[4096];
  size_t address_len = 0, message_len = 0;
  if (argc != 2 ||
      napi_get_value_string_utf8(env, argv[0], address, sizeof address, &address_len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], message, sizeof message, &message_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "notify(address: string, message: string)");
    return NULL;
  }
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  /* Longer than sun_path, or a message that would be cut: refuse rather than send something else. */
  if (address_len == 0 || address_len >= sizeof sun.sun_path || (address[0] != '/' && address[0] != '@')) {
    pvx_throw_errno(env, EINVAL, "notify", address);
    return NULL;
  }
  if (message_len >= sizeof message - 1) {
    pvx_throw_errno(env, EMSGSIZE, "notify", address);
    return NULL;
  }
  memcpy(sun.sun_path, address, address_len);
  socklen_t sun_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + address_len);
  if (address[0] == '@') sun.sun_path[0] = '\0'; /* abstract: no trailing NUL counted */
  else sun_len += 1;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    pvx_throw_errno(env, errno, "notify socket", NULL);
    return NULL;
  }
  ssize_t sent = sendto(fd, message, message_len, MSG_NOSIGNAL, (struct sockaddr *)&sun, sun_len);
  int err = errno;
  close(fd);
  if (sent < 0) pvx_throw_errno(env, err, "notify", address);
  return NULL;
}

napi_status pvx_init_notify(napi_env env, napi_value exports) {
  return pvx_export(env, exports, "notify", notify);
}
