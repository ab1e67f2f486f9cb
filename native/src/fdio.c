/*
 * Fd-carrying Unix stream socket primitives (wrapped by native/fd-socket.ts).
 *
 * Everything here is synchronous and non-blocking; the stream logic (queues, backpressure,
 * half-close) lives in TypeScript. Exports:
 *   socketPair() -> [fd, fd]                  AF_UNIX SOCK_STREAM, CLOEXEC + NONBLOCK
 *   recv(fd, maxBytes) -> {data, fds} | null  null: would block; data.length 0: end of stream.
 *                                             MSG_CTRUNC: the fds that did arrive are closed and an
 *                                             Error with code 'ECTRUNC' is thrown (the bytes of that
 *                                             read are lost with it: the stream is unusable).
 *   send(fd, buffers, offset, fds | null) -> bytes written, -1 if it would block. One sendmsg with
 *                                             the buffers as iovec (the first one from offset) and the
 *                                             fds, if any, as SCM_RIGHTS (they go with the first byte).
 *   shutdownWrite(fd), close(fd), dup(fd) (F_DUPFD_CLOEXEC), setNonBlocking(fd)
 *   peerCred(fd) -> {pid, uid, gid}, peerGroups(fd) -> gid[]
 *   accept(fd) -> fd | -1 if it would block   (accept4, CLOEXEC + NONBLOCK)
 *   listenFd(path, backlog) -> fd             a listening socket bound to path (tests and benchmarks;
 *                                             the daemon listens through the namespace helpers)
 *   pollStart(fd, events, cb) -> handle, pollUpdate(handle, events), pollStop(handle)
 *                                             uv_poll on the main loop; events: 1 readable, 2 writable,
 *                                             0 parks the handle. cb(error | null, readable, writable)
 *                                             runs through napi_make_callback. pollStop is idempotent.
 *                                             ORDER: pollStop(handle) BEFORE close(fd): libuv must take
 *                                             the fd out of epoll while the number still means this file.
 * Failed syscalls throw Errors with code = errno name (pvx_throw_errno).
 */
#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define PVX_SCM_MAX_FD 253       /* the kernel's SCM_MAX_FD: most fds one message can carry */
#define PVX_SEND_FDS_LIMIT 4096  /* bound for the stack control buffer; the kernel rejects > 253 */
#define PVX_RECV_MAX (16 << 20)

/* For N-API calls that fail only with a pending exception or out of memory. */
#define CALL(call)                      \
  do {                                  \
    if ((call) != napi_ok) return NULL; \
  } while (0)

/* ---- argument helpers ---------------------------------------------------------------------- */

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < want) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "missing arguments");
    return false;
  }
  return true;
}

/* An integer in [min, max]; throws a TypeError/RangeError naming `what` otherwise. */
static bool get_integer(napi_env env, napi_value value, const char *what, int64_t min, int64_t max,
                        int64_t *out) {
  double number;
  char message[128];
  if (napi_get_value_double(env, value, &number) != napi_ok) {
    snprintf(message, sizeof message, "%s must be a number", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return false;
  }
  /* The range test comes first: it also rejects NaN, and makes the cast below well defined. */
  if (!(number >= (double)min && number <= (double)max) || (double)(int64_t)number != number) {
    snprintf(message, sizeof message, "%s must be an integer in [%lld, %lld]", what, (long long)min,
             (long long)max);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
    return false;
  }
  *out = (int64_t)number;
  return true;
}

static bool get_fd(napi_env env, napi_value value, int *fd) {
  int64_t number;
  if (!get_integer(env, value, "fd", 0, INT32_MAX, &number)) return false;
  *fd = (int)number;
  return true;
}

/* For the functions whose only argument is an fd. */
static bool get_fd_arg(napi_env env, napi_callback_info info, int *fd) {
  napi_value argv[1];
  return get_args(env, info, 1, argv) && get_fd(env, argv[0], fd);
}

static napi_value make_int(napi_env env, int64_t value) {
  napi_value result;
  return napi_create_int64(env, value, &result) == napi_ok ? result : NULL;
}

static napi_value make_undefined(napi_env env) {
  napi_value result;
  napi_get_undefined(env, &result);
  return result;
}

static bool is_nullish(napi_env env, napi_value value) {
  napi_valuetype type;
  return napi_typeof(env, value, &type) == napi_ok && (type == napi_null || type == napi_undefined);
}

/* ---- sockets --------------------------------------------------------------------------------- */

static napi_value fd_pair(napi_env env, const int sv[2]) {
  napi_value pair;
  CALL(napi_create_array_with_length(env, 2, &pair));
  CALL(napi_set_element(env, pair, 0, make_int(env, sv[0])));
  CALL(napi_set_element(env, pair, 1, make_int(env, sv[1])));
  return pair;
}

static napi_value js_socket_pair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
    pvx_throw_errno(env, errno, "socketpair", NULL);
    return NULL;
  }
  return fd_pair(env, sv);
}

static void close_fds(const int *fds, size_t count) {
  for (size_t i = 0; i < count; i++) close(fds[i]);
}

static void throw_ctrunc(napi_env env, size_t closed) {
  char message[160];
  snprintf(message, sizeof message,
           "recvmsg: control data truncated (MSG_CTRUNC): fds were lost; the %zu that arrived were closed",
           closed);
  napi_value code, msg, error, syscall;
  napi_create_string_utf8(env, "ECTRUNC", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_string_utf8(env, "recvmsg", NAPI_AUTO_LENGTH, &syscall);
  napi_set_named_property(env, error, "syscall", syscall);
  napi_throw(env, error);
}

/* Every read lands in this per-thread buffer (each Node environment runs on its own thread) and is
 * copied into a Buffer of the exact size. Measured: faster than handing malloc'd memory to an external
 * Buffer (its finalizer costs more than the copy), and a short read never pins a whole read size. */
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
static void free_recv_scratch(void *arg) {
  (void)arg;
  free(recv_scratch);
  recv_scratch = NULL;
  recv_scratch_size = 0;
}

static napi_value js_recv(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  int64_t max_bytes;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd) ||
      !get_integer(env, argv[1], "maxBytes", 1, PVX_RECV_MAX, &max_bytes))
    return NULL;
  char *bytes = recv_buffer((size_t)max_bytes);
  if (bytes == NULL) {
    pvx_throw_errno(env, ENOMEM, "recv", NULL);
    return NULL;
  }

  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * PVX_SCM_MAX_FD)];
  } control;
  struct iovec iov = {.iov_base = bytes, .iov_len = (size_t)max_bytes};
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      napi_value null_value;
      napi_get_null(env, &null_value);
      return null_value;
    }
    pvx_throw_errno(env, errno, "recvmsg", NULL);
    return NULL;
  }

  int fds[PVX_SCM_MAX_FD];
  size_t fd_count = 0;
  for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    if (count > PVX_SCM_MAX_FD - fd_count) count = PVX_SCM_MAX_FD - fd_count;
    memcpy(fds + fd_count, CMSG_DATA(cmsg), count * sizeof(int));
    fd_count += count;
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    close_fds(fds, fd_count);
    throw_ctrunc(env, fd_count);
    return NULL;
  }

  napi_value result, data, fd_array;
  bool ok = napi_create_buffer_copy(env, (size_t)n, bytes, NULL, &data) == napi_ok &&
            napi_create_object(env, &result) == napi_ok &&
            napi_create_array_with_length(env, fd_count, &fd_array) == napi_ok;
  for (size_t i = 0; ok && i < fd_count; i++)
    ok = napi_set_element(env, fd_array, (uint32_t)i, make_int(env, fds[i])) == napi_ok;
  ok = ok && napi_set_named_property(env, result, "data", data) == napi_ok &&
       napi_set_named_property(env, result, "fds", fd_array) == napi_ok;
  if (!ok) {
    close_fds(fds, fd_count); /* never leave received fds without an owner */
    return NULL;
  }
  return result;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  int64_t offset;
  uint32_t buffer_count, fd_count = 0;
  if (!get_args(env, info, 4, argv) || !get_fd(env, argv[0], &fd) ||
      !get_integer(env, argv[2], "offset", 0, INT32_MAX, &offset))
    return NULL;
  if (napi_get_array_length(env, argv[1], &buffer_count) != napi_ok || buffer_count == 0 ||
      buffer_count > IOV_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "buffers must be an array of 1 to IOV_MAX Buffers");
    return NULL;
  }
  bool has_fds = !is_nullish(env, argv[3]);
  if (has_fds &&
      (napi_get_array_length(env, argv[3], &fd_count) != napi_ok || fd_count > PVX_SEND_FDS_LIMIT)) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fds must be null or an array of at most 4096 fds");
    return NULL;
  }

  struct iovec iov[buffer_count];
  for (uint32_t i = 0; i < buffer_count; i++) {
    napi_value buffer;
    CALL(napi_get_element(env, argv[1], i, &buffer));
    if (napi_get_buffer_info(env, buffer, &iov[i].iov_base, &iov[i].iov_len) != napi_ok) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "buffers must contain only Buffers");
      return NULL;
    }
  }
  if ((size_t)offset > iov[0].iov_len) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "offset is past the end of the first buffer");
    return NULL;
  }
  iov[0].iov_base = (char *)iov[0].iov_base + offset;
  iov[0].iov_len -= (size_t)offset;

  /* Sized for fd_count (at least one int so the array is never empty). */
  struct cmsghdr control[(CMSG_SPACE(sizeof(int) * (fd_count ? fd_count : 1)) + sizeof(struct cmsghdr) - 1) /
                        sizeof(struct cmsghdr)];
  struct msghdr msg = {.msg_iov = iov, .msg_iovlen = buffer_count};
  if (fd_count > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fd_count);
    memset(control, 0, msg.msg_controllen);
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fd_count);
    int *data = (int *)CMSG_DATA(cmsg);
    for (uint32_t i = 0; i < fd_count; i++) {
      napi_value element;
      CALL(napi_get_element(env, argv[3], i, &element));
      if (!get_fd(env, element, &data[i])) return NULL;
    }
  }

  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, -1);
    pvx_throw_errno(env, errno, "sendmsg", NULL);
    return NULL;
  }
  return make_int(env, n);
}

static napi_value js_shutdown_write(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd_arg(env, info, &fd)) return NULL;
  if (shutdown(fd, SHUT_WR) < 0) {
    pvx_throw_errno(env, errno, "shutdown", NULL);
    return NULL;
  }
  return make_undefined(env);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd_arg(env, info, &fd)) return NULL;
  /* On Linux the fd is released even when close reports EINTR: never retry. */
  if (close(fd) < 0 && errno != EINTR) {
    pvx_throw_errno(env, errno, "close", NULL);
    return NULL;
  }
  return make_undefined(env);
}

static napi_value js_dup(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd_arg(env, info, &fd)) return NULL;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    pvx_throw_errno(env, errno, "dup", NULL);
    return NULL;
  }
  return make_int(env, copy);
}

static napi_value js_set_non_blocking(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd_arg(env, info, &fd)) return NULL;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)) {
    pvx_throw_errno(env, errno, "fcntl", NULL);
    return NULL;
  }
  return make_undefined(env);
}

static napi_value js_peer_cred(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd_arg(env, info, &fd)) return NULL;
  struct ucred cred;
  socklen_t length = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) < 0) {
    pvx_throw_errno(env, errno, "getsockopt SO_PEERCRED", NULL);
    return NULL;
  }
  napi_value result;
  CALL(napi_create_object(env, &result));
  CALL(napi_set_named_property(env, result, "pid", make_int(env, cred.pid)));
  CALL(napi_set_named_property(env, result, "uid", make_int(env, cred.uid)));
  CALL(napi_set_named_property(env, result, "gid", make_int(env, cred.gid)));
  return result;
}

static napi_value js_peer_groups(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd_arg(env, info, &fd)) return NULL;
  socklen_t length = 64 * sizeof(gid_t);
  gid_t *groups = NULL;
  for (;;) {
    gid_t *grown = realloc(groups, length ? length : sizeof(gid_t));
    if (grown == NULL) {
      free(groups);
      pvx_throw_errno(env, ENOMEM, "getsockopt SO_PEERGROUPS", NULL);
      return NULL;
    }
    groups = grown;
    /* ERANGE: the kernel wrote the size it needs into length; retry with that. */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &length) == 0) break;
    if (errno != ERANGE) {
      free(groups);
      pvx_throw_errno(env, errno, "getsockopt SO_PEERGROUPS", NULL);
      return NULL;
    }
  }
  size_t count = length / sizeof(gid_t);
  napi_value result;
  bool ok = napi_create_array_with_length(env, count, &result) == napi_ok;
  for (size_t i = 0; ok && i < count; i++)
    ok = napi_set_element(env, result, (uint32_t)i, make_int(env, groups[i])) == napi_ok;
  free(groups);
  return ok ? result : NULL;
}

static napi_value js_accept(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd_arg(env, info, &fd)) return NULL;
  int connection;
  do connection = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  while (connection < 0 && errno == EINTR);
  if (connection < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, -1);
    pvx_throw_errno(env, errno, "accept4", NULL);
    return NULL;
  }
  return make_int(env, connection);
}

static napi_value js_listen_fd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t backlog;
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  size_t length;
  if (!get_args(env, info, 2, argv) || !get_integer(env, argv[1], "backlog", 0, INT32_MAX, &backlog)) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], address.sun_path, sizeof address.sun_path, &length) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "path must be a string");
    return NULL;
  }
  if (length >= sizeof address.sun_path - 1) {
    pvx_throw_errno(env, ENAMETOOLONG, "bind", address.sun_path);
    return NULL;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    pvx_throw_errno(env, errno, "socket", NULL);
    return NULL;
  }
  const char *failed = NULL;
  if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0)
    failed = "bind";
  else if (listen(fd, (int)backlog) < 0)
    failed = "listen";
  if (failed != NULL) {
    int err = errno;
    close(fd);
    pvx_throw_errno(env, err, failed, address.sun_path);
    return NULL;
  }
  return make_int(env, fd);
}

/* ---- poller ---------------------------------------------------------------------------------
 * Lifetime: a pvx_poll is freed once BOTH its uv handle is closed (close_cb ran) and its JS
 * handle (an external) is gone (finalizer ran). If the JS handle is collected while polling,
 * the finalizer starts the close. An async cleanup hook closes handles still open when the
 * environment shuts down (a worker exiting), so the loop can close cleanly.
 */

typedef struct {
  uv_poll_t handle;
  napi_env env;
  napi_ref callback;
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup_hook;
  bool closing;           /* uv_close was called */
  bool closed;            /* the close callback ran */
  bool external_released; /* the JS handle was finalized */
} pvx_poll;

static const napi_type_tag poll_tag = {0x7076785f706f6c6cULL, 0x6664696f2e630001ULL};

static void on_poll_closed(uv_handle_t *handle) {
  pvx_poll *poll = handle->data;
  napi_env env = poll->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  if (poll->callback != NULL) napi_delete_reference(env, poll->callback);
  if (poll->async_context != NULL) napi_async_destroy(env, poll->async_context);
  napi_close_handle_scope(env, scope);
  /* Last: removing the hook may release the environment during shutdown. */
  if (poll->cleanup_hook != NULL) napi_remove_async_cleanup_hook(poll->cleanup_hook);
  poll->closed = true;
  if (poll->external_released) free(poll);
}

static void poll_close(pvx_poll *poll) {
  if (poll->closing) return;
  poll->closing = true;
  uv_poll_stop(&poll->handle);
  uv_close((uv_handle_t *)&poll->handle, on_poll_closed);
}

static void on_env_cleanup(napi_async_cleanup_hook_handle hook, void *data) {
  (void)hook;
  poll_close(data); /* on_poll_closed removes the hook */
}

static void on_external_finalized(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  pvx_poll *poll = data;
  poll->external_released = true;
  if (poll->closed)
    free(poll);
  else
    poll_close(poll);
}

/* libuv reports EPOLLERR as UV_EBADF; the socket's pending error (SO_ERROR) says what happened. */
static int poll_error(pvx_poll *poll, int status) {
  uv_os_fd_t fd;
  int err = 0;
  socklen_t length = sizeof err;
  if (uv_fileno((uv_handle_t *)&poll->handle, &fd) == 0 &&
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &length) == 0 && err != 0)
    return err;
  return -status;
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  pvx_poll *poll = handle->data;
  napi_env env = poll->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, argv[3], receiver, result;
  if (status < 0)
    argv[0] = pvx_errno_error(env, poll_error(poll, status), "poll", NULL);
  else
    napi_get_null(env, &argv[0]);
  napi_get_boolean(env, (events & UV_READABLE) != 0, &argv[1]);
  napi_get_boolean(env, (events & UV_WRITABLE) != 0, &argv[2]);
  napi_get_global(env, &receiver); /* napi_make_callback needs an object receiver */
  napi_get_reference_value(env, poll->callback, &callback);
  /* poll stays valid after the call even if JS stopped it: it is freed only in a later close callback. */
  if (napi_make_callback(env, poll->async_context, receiver, callback, 3, argv, &result) ==
      napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
  napi_close_handle_scope(env, scope);
}

static int uv_events(int64_t events) {
  return ((events & 1) ? UV_READABLE : 0) | ((events & 2) ? UV_WRITABLE : 0);
}

static int poll_set_events(pvx_poll *poll, int events) {
  return events == 0 ? uv_poll_stop(&poll->handle) : uv_poll_start(&poll->handle, events, on_poll);
}

static napi_value js_poll_start(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  int64_t events;
  napi_valuetype type;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd) ||
      !get_integer(env, argv[1], "events", 0, 3, &events))
    return NULL;
  if (napi_typeof(env, argv[2], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "callback must be a function");
    return NULL;
  }
  uv_loop_t *loop;
  CALL(napi_get_uv_event_loop(env, &loop));
  pvx_poll *poll = calloc(1, sizeof *poll);
  if (poll == NULL) {
    pvx_throw_errno(env, ENOMEM, "pollStart", NULL);
    return NULL;
  }
  int rc = uv_poll_init(loop, &poll->handle, fd);
  if (rc < 0) {
    free(poll);
    pvx_throw_errno(env, -rc, "uv_poll_init", NULL);
    return NULL;
  }
  poll->handle.data = poll;
  poll->env = env;
  napi_value resource, resource_name, external;
  if (napi_create_object(env, &resource) != napi_ok ||
      napi_create_string_utf8(env, "PvxFdPoll", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, resource, resource_name, &poll->async_context) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &poll->callback) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_env_cleanup, poll, &poll->cleanup_hook) != napi_ok ||
      napi_create_external(env, poll, on_external_finalized, NULL, &external) != napi_ok) {
    /* The close callback releases whatever was created. */
    poll->external_released = true;
    poll_close(poll);
    return NULL;
  }
  /* From here the external owns its half of poll: on failure the finalizer and close callback free it. */
  if (napi_type_tag_object(env, external, &poll_tag) != napi_ok) {
    poll_close(poll);
    return NULL;
  }
  rc = poll_set_events(poll, uv_events(events));
  if (rc < 0) {
    poll_close(poll);
    pvx_throw_errno(env, -rc, "uv_poll_start", NULL);
    return NULL;
  }
  return external;
}

static pvx_poll *get_poll(napi_env env, napi_value value) {
  bool tagged = false;
  void *data;
  if (napi_check_object_type_tag(env, value, &poll_tag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, value, &data) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "not a poll handle");
    return NULL;
  }
  return data;
}

static napi_value js_poll_update(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t events;
  if (!get_args(env, info, 2, argv) || !get_integer(env, argv[1], "events", 0, 3, &events)) return NULL;
  pvx_poll *poll = get_poll(env, argv[0]);
  if (poll == NULL) return NULL;
  if (!poll->closing) {
    int rc = poll_set_events(poll, uv_events(events));
    if (rc < 0) {
      pvx_throw_errno(env, -rc, "uv_poll_start", NULL);
      return NULL;
    }
  }
  return make_undefined(env);
}

static napi_value js_poll_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  pvx_poll *poll = get_poll(env, argv[0]);
  if (poll == NULL) return NULL;
  poll_close(poll);
  return make_undefined(env);
}

napi_status pvx_init_fdio(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {
      {"socketPair", js_socket_pair},
      {"recv", js_recv},
      {"send", js_send},
      {"shutdownWrite", js_shutdown_write},
      {"close", js_close},
      {"dup", js_dup},
      {"setNonBlocking", js_set_non_blocking},
      {"peerCred", js_peer_cred},
      {"peerGroups", js_peer_groups},
      {"accept", js_accept},
      {"listenFd", js_listen_fd},
      {"pollStart", js_poll_start},
      {"pollUpdate", js_poll_update},
      {"pollStop", js_poll_stop},
  };
  napi_status status = napi_add_env_cleanup_hook(env, free_recv_scratch, NULL);
  for (size_t i = 0; status == napi_ok && i < sizeof functions / sizeof functions[0]; i++)
    status = pvx_export(env, exports, functions[i].name, functions[i].fn);
  return status;
}
