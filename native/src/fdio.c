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
 *                                             the buffers (a Buffer or an array of them) as iovec (the
 *                                             first one from offset) and the fds, if any, as SCM_RIGHTS
 *                                             (they go with the first byte).
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
 *   eventSet() -> set, watch(set, fd, events, readSize, cb) -> watch, watchUpdate(watch, events),
 *   watchStop(watch)                          sockets polled, read and served in batches (see "event
 *                                             sets" below); events as for pollStart, or 4: readable, but
 *                                             only reported (not read). The same ORDER rule.
 *   pipe() -> [readFd, writeFd, capacity]     a non-blocking, close-on-exec pipe of up to 1 MiB
 *   splice(fromFd, toFd, maxBytes) -> bytes moved inside the kernel (one side a pipe), 0 at end of
 *                                             stream, -1 if it would block. A socket's fds travelling
 *                                             with spliced bytes are closed by the kernel.
 * Failed syscalls throw Errors with code = errno name (pvx_throw_errno).
 */
#include "addon.h"
#include "cmsg.h"
#include "receive.h"

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

#define PVX_SEND_FDS_LIMIT 4096  /* bound for the stack control buffer; the kernel rejects > 253 */
#define PVX_RECV_MAX (16 << 20)

/* For N-API calls that fail only with a pending exception or out of memory. */
#define CALL(call)                      \
  do {                                  \
    if ((call) != napi_ok) return NULL; \
  } while (0)

/* ---- argument helpers (the shared ones are in addon.c) ---------------------------------- */

/* For the functions whose only argument is an fd. */
static bool get_fd_arg(napi_env env, napi_callback_info info, int *fd) {
  napi_value argv[1];
  return pvx_get_args(env, info, 1, argv) && pvx_get_fd(env, argv[0], fd);
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

static napi_value ctrunc_error(napi_env env, size_t closed) {
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
  return error;
}

/* The received fds as a JS array (null if none came, unless always_array). On failure the fds are closed:
 * received fds are never left without an owner. */
static bool received_fds(napi_env env, const pvx_received *received, bool always_array, napi_value *result) {
  if (received->fd_count == 0 && !always_array) return napi_get_null(env, result) == napi_ok;
  bool ok = napi_create_array_with_length(env, received->fd_count, result) == napi_ok;
  for (size_t i = 0; ok && i < received->fd_count; i++)
    ok = napi_set_element(env, *result, (uint32_t)i, make_int(env, received->fds[i])) == napi_ok;
  if (!ok) pvx_close_fds(received->fds, received->fd_count);
  return ok;
}

static napi_value js_recv(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  int64_t max_bytes;
  if (!pvx_get_args(env, info, 2, argv) || !pvx_get_fd(env, argv[0], &fd) ||
      !pvx_get_integer(env, argv[1], "maxBytes", 1, PVX_RECV_MAX, &max_bytes))
    return NULL;
  pvx_received received;
  int status = pvx_receive(fd, (size_t)max_bytes, &received);
  if (status == PVX_WOULD_BLOCK) {
    napi_value null_value;
    napi_get_null(env, &null_value);
    return null_value;
  }
  if (status == PVX_CTRUNC) {
    napi_throw(env, ctrunc_error(env, received.fd_count));
    return NULL;
  }
  if (status != PVX_RECEIVED) {
    pvx_throw_errno(env, status, "recvmsg", NULL);
    return NULL;
  }
  napi_value result, data, fd_array;
  if (!received_fds(env, &received, true, &fd_array)) return NULL;
  bool ok = napi_create_buffer_copy(env, (size_t)received.bytes, received.data, NULL, &data) == napi_ok &&
            napi_create_object(env, &result) == napi_ok &&
            napi_set_named_property(env, result, "data", data) == napi_ok &&
            napi_set_named_property(env, result, "fds", fd_array) == napi_ok;
  if (!ok) {
    pvx_close_fds(received.fds, received.fd_count); /* never leave received fds without an owner */
    return NULL;
  }
  return result;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  int64_t offset;
  uint32_t buffer_count, fd_count = 0;
  if (!pvx_get_args(env, info, 4, argv) || !pvx_get_fd(env, argv[0], &fd) ||
      !pvx_get_integer(env, argv[2], "offset", 0, INT32_MAX, &offset))
    return NULL;
  /* One Buffer, or an array of them. */
  bool single;
  CALL(napi_is_buffer(env, argv[1], &single));
  if (single) {
    buffer_count = 1;
  } else if (napi_get_array_length(env, argv[1], &buffer_count) != napi_ok || buffer_count == 0 ||
             buffer_count > IOV_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "buffers must be a Buffer or an array of 1 to IOV_MAX Buffers");
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
    napi_value buffer = argv[1];
    if (!single) CALL(napi_get_element(env, argv[1], i, &buffer));
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

  /* Sized for fd_count (at least one so the arrays are never empty). */
  int fds[fd_count ? fd_count : 1];
  struct cmsghdr control[(CMSG_SPACE(sizeof(int) * (fd_count ? fd_count : 1)) + sizeof(struct cmsghdr) - 1) /
                        sizeof(struct cmsghdr)];
  struct msghdr msg = {.msg_iov = iov, .msg_iovlen = buffer_count};
  for (uint32_t i = 0; i < fd_count; i++) {
    napi_value element;
    CALL(napi_get_element(env, argv[3], i, &element));
    if (!pvx_get_fd(env, element, &fds[i])) return NULL;
  }
  if (fd_count > 0) {
    msg.msg_control = control;
    msg.msg_controllen = pvx_cmsg_put_fds(control, sizeof control, fds, fd_count);
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
  if (!pvx_get_args(env, info, 2, argv) || !pvx_get_integer(env, argv[1], "backlog", 0, INT32_MAX, &backlog)) return NULL;
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

/* ---- kernel-side transfers --------------------------------------------------------------- */

#define PIPE_SIZE (1 << 20) /* asked for; a pipe keeps its default size if the system refuses */

static napi_value js_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
    pvx_throw_errno(env, errno, "pipe2", NULL);
    return NULL;
  }
  fcntl(fds[1], F_SETPIPE_SZ, PIPE_SIZE);
  int capacity = fcntl(fds[1], F_GETPIPE_SZ);
  napi_value result;
  bool ok = capacity > 0 && napi_create_array_with_length(env, 3, &result) == napi_ok &&
            napi_set_element(env, result, 0, make_int(env, fds[0])) == napi_ok &&
            napi_set_element(env, result, 1, make_int(env, fds[1])) == napi_ok &&
            napi_set_element(env, result, 2, make_int(env, capacity)) == napi_ok;
  if (!ok) {
    int err = errno;
    pvx_close_fds(fds, 2);
    if (capacity <= 0) pvx_throw_errno(env, err, "fcntl F_GETPIPE_SZ", NULL);
    return NULL;
  }
  return result;
}

static napi_value js_splice(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int from, to;
  int64_t max_bytes;
  if (!pvx_get_args(env, info, 3, argv) || !pvx_get_fd(env, argv[0], &from) || !pvx_get_fd(env, argv[1], &to) ||
      !pvx_get_integer(env, argv[2], "maxBytes", 1, INT32_MAX, &max_bytes))
    return NULL;
  ssize_t n;
  do n = splice(from, NULL, to, NULL, (size_t)max_bytes, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, -1);
    pvx_throw_errno(env, errno, "splice", NULL);
    return NULL;
  }
  return make_int(env, n);
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
  pvx_report_thrown(env, napi_make_callback(env, poll->async_context, receiver, callback, 3, argv, &result));
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
  if (!pvx_get_args(env, info, 3, argv) || !pvx_get_fd(env, argv[0], &fd) ||
      !pvx_get_integer(env, argv[1], "events", 0, 3, &events))
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
  if (!pvx_get_args(env, info, 2, argv) || !pvx_get_integer(env, argv[1], "events", 0, 3, &events)) return NULL;
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
  if (!pvx_get_args(env, info, 1, argv)) return NULL;
  pvx_poll *poll = get_poll(env, argv[0]);
  if (poll == NULL) return NULL;
  poll_close(poll);
  return make_undefined(env);
}

/* ---- event sets ----------------------------------------------------------------------------
 * The sockets of an event set are served in batches: each has its own uv_poll, whose callback only notes
 * the socket as ready; a uv_check handle of the set, which libuv runs right after the poll phase, then
 * serves every socket noted in this turn of the loop within ONE callback scope, so microtasks and ticks
 * run once after the whole batch instead of after every socket. For each socket, first up to READ_BUDGET
 * reads, each handed to the socket's callback together with its bytes and fds (no second call to fetch
 * them), then its writable event (see serve()). A socket's interest is checked again before every
 * delivery, so a callback that pauses or stops another socket of the batch takes effect at once.
 *
 * Bytes of reads up to POOLED_MAX are copied into slices of a shared pool ArrayBuffer (the callback makes
 * the Buffer view): creating a Buffer from C costs more than the whole read. Larger reads are copied into a
 * Buffer of the exact size. (Measured: reading straight into a new Buffer saves the copy but not the time,
 * as the kernel then writes to cold memory instead, and a Buffer made for a read that would block is lost.)
 *
 * Lifetime: a watch is freed once it is stopped, its uv handle closed, its JS handle finalized and the
 * ready list no longer holds it; the set once its check handle is closed, its JS handle finalized and no
 * watch is left. When the environment shuts down, an async cleanup hook closes every handle of the set.
 */

#define READ_BUDGET 16 /* reads per socket per batch, before yielding to the others and the loop */
#define POOL_SIZE (8 * 1024) /* as Node's Buffer pool: a slice kept alive pins at most this much */
#define POOLED_MAX 1024

/* Interest: WATCH_READABLE reads and delivers the bytes, WATCH_READY only reports that there are some. */
enum { WATCH_READABLE = 1, WATCH_WRITABLE = 2, WATCH_READY = 4 };
/* The first argument of a watch callback: what happened. */
enum { EVENT_WRITABLE = 0, EVENT_DATA = 1, EVENT_END = 2, EVENT_ERROR = 3, EVENT_READY = 4 };

typedef struct pvx_set pvx_set;
typedef struct pvx_watch pvx_watch;

struct pvx_watch {
  uv_poll_t handle;
  pvx_set *set;
  int fd;
  int events;       /* WATCH_* bits the handle polls for */
  int ready;        /* UV_READABLE | UV_WRITABLE noted since the last batch */
  int poll_status;  /* < 0: libuv reported an error (and stopped the handle) */
  size_t read_size;
  bool queued;      /* in the set's ready list */
  bool stopped;
  bool closed;      /* the uv handle's close callback ran */
  bool external_released;
  napi_ref callback; /* released when stopped */
  pvx_watch *next_ready;
  pvx_watch *prev, *next; /* the set's watches, for the environment's cleanup */
};

struct pvx_set {
  napi_env env;
  uv_check_t check;
  bool check_started;
  pvx_watch *ready_head, *ready_tail;
  pvx_watch *watches;
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup_hook;
  size_t open_handles; /* the check handle and the watch handles not closed yet */
  bool shutting_down;  /* the environment is going away: handles are being closed */
  bool external_released;
  napi_ref pool; /* an ArrayBuffer, or NULL */
  char *pool_data;
  size_t pool_used;
};

static const napi_type_tag set_tag = {0x7076785f73657400ULL, 0x6664696f2e630002ULL};
static const napi_type_tag watch_tag = {0x7076785f77617463ULL, 0x6664696f2e630003ULL};

static void set_free_if_done(pvx_set *set) {
  if (set->open_handles == 0 && set->external_released && set->watches == NULL) free(set);
}

/* One handle of the set closed; the last one ends the environment's cleanup (the caller frees what is
 * done). */
static void set_handle_closed(pvx_set *set) {
  if (--set->open_handles > 0 || set->cleanup_hook == NULL) return;
  /* Last: removing the hook may release the environment during shutdown. */
  napi_remove_async_cleanup_hook(set->cleanup_hook);
  set->cleanup_hook = NULL;
}

static void on_check_closed(uv_handle_t *handle) {
  pvx_set *set = handle->data;
  napi_env env = set->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  if (set->pool != NULL) napi_delete_reference(env, set->pool);
  set->pool = NULL;
  if (set->async_context != NULL) napi_async_destroy(env, set->async_context);
  set->async_context = NULL;
  napi_close_handle_scope(env, scope);
  set_handle_closed(set);
  set_free_if_done(set);
}

static void watch_free_if_done(pvx_watch *watch) {
  if (!watch->closed || !watch->external_released || watch->queued) return;
  pvx_set *set = watch->set;
  if (watch->prev != NULL)
    watch->prev->next = watch->next;
  else
    set->watches = watch->next;
  if (watch->next != NULL) watch->next->prev = watch->prev;
  free(watch);
  set_free_if_done(set);
}

static void on_watch_closed(uv_handle_t *handle) {
  pvx_watch *watch = handle->data;
  watch->closed = true;
  set_handle_closed(watch->set);
  watch_free_if_done(watch);
}

/* Stops polling and closes the uv handle (so the fd may be closed right after); no callback follows. */
static void watch_stop(napi_env env, pvx_watch *watch) {
  if (watch->stopped) return;
  watch->stopped = true;
  watch->events = 0;
  uv_poll_stop(&watch->handle); /* takes the fd out of epoll now, while the number still means this file */
  uv_close((uv_handle_t *)&watch->handle, on_watch_closed);
  if (watch->callback != NULL) napi_delete_reference(env, watch->callback);
  watch->callback = NULL;
}

static void on_set_env_cleanup(napi_async_cleanup_hook_handle hook, void *data) {
  (void)hook;
  pvx_set *set = data;
  set->shutting_down = true;
  for (pvx_watch *watch = set->watches; watch != NULL; watch = watch->next) watch_stop(set->env, watch);
  uv_close((uv_handle_t *)&set->check, on_check_closed); /* the last close removes the hook */
}

static void on_set_finalized(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  pvx_set *set = data;
  set->external_released = true;
  set_free_if_done(set);
}

static void on_watch_finalized(napi_env env, void *data, void *hint) {
  (void)hint;
  pvx_watch *watch = data;
  watch_stop(env, watch);
  watch->external_released = true;
  watch_free_if_done(watch);
}

static void on_set_check(uv_check_t *check);

static void on_watch_ready(uv_poll_t *handle, int status, int events) {
  pvx_watch *watch = handle->data;
  pvx_set *set = watch->set;
  if (status < 0)
    watch->poll_status = status;
  else
    watch->ready |= events;
  if (watch->queued) return;
  watch->queued = true;
  watch->next_ready = NULL;
  if (set->ready_tail != NULL)
    set->ready_tail->next_ready = watch;
  else
    set->ready_head = watch;
  set->ready_tail = watch;
  if (!set->check_started && uv_check_start(&set->check, on_set_check) == 0) set->check_started = true;
}

static int watch_set_events(pvx_watch *watch, int events) {
  if (watch->stopped || events == watch->events) return 0;
  int uv = ((events & (WATCH_READABLE | WATCH_READY)) ? UV_READABLE : 0) | ((events & WATCH_WRITABLE) ? UV_WRITABLE : 0);
  int rc = uv == 0 ? uv_poll_stop(&watch->handle) : uv_poll_start(&watch->handle, uv, on_watch_ready);
  if (rc == 0) watch->events = events;
  return rc;
}

/* Calls the watch's callback; an exception it throws is reported as uncaught, as after a MakeCallback. */
static void deliver(napi_env env, pvx_watch *watch, size_t argc, napi_value *argv) {
  napi_value callback, receiver;
  if (napi_get_reference_value(env, watch->callback, &callback) != napi_ok || callback == NULL) return;
  napi_get_undefined(env, &receiver);
  pvx_report_thrown(env, napi_call_function(env, receiver, callback, argc, argv, NULL));
}

static void deliver_kind(napi_env env, pvx_watch *watch, int kind, napi_value value) {
  napi_value argv[2];
  napi_create_int32(env, kind, &argv[0]);
  argv[1] = value;
  deliver(env, watch, value == NULL ? 1 : 2, argv);
}

/* The `length` bytes at `data` as (source, offset) for the callback: a pool slice, or a Buffer of exactly
 * them (offset -1). */
static bool received_bytes(napi_env env, pvx_set *set, const char *data, size_t length, napi_value *source,
                           int64_t *offset) {
  if (length > POOLED_MAX) {
    *offset = -1;
    return napi_create_buffer_copy(env, length, data, NULL, source) == napi_ok;
  }
  if (set->pool == NULL || set->pool_used + length > POOL_SIZE) {
    void *data;
    if (napi_create_arraybuffer(env, POOL_SIZE, &data, source) != napi_ok) return false;
    if (set->pool != NULL) napi_delete_reference(env, set->pool);
    set->pool = NULL;
    if (napi_create_reference(env, *source, 1, &set->pool) != napi_ok) return false;
    set->pool_data = data;
    set->pool_used = 0;
  } else if (napi_get_reference_value(env, set->pool, source) != napi_ok) {
    return false;
  }
  memcpy(set->pool_data + set->pool_used, data, length);
  *offset = (int64_t)set->pool_used;
  set->pool_used += length;
  return true;
}

static void deliver_received(napi_env env, pvx_watch *watch, const pvx_received *received) {
  if (received->bytes == 0) {
    pvx_close_fds(received->fds, received->fd_count); /* none: fds never come without a byte */
    deliver_kind(env, watch, EVENT_END, NULL);
    return;
  }
  napi_value argv[5];
  int64_t offset;
  if (!received_fds(env, received, false, &argv[4])) return;
  if (!received_bytes(env, watch->set, received->data, (size_t)received->bytes, &argv[1], &offset)) {
    pvx_close_fds(received->fds, received->fd_count);
    return;
  }
  napi_create_int32(env, EVENT_DATA, &argv[0]);
  argv[2] = make_int(env, offset);
  argv[3] = make_int(env, received->bytes);
  deliver(env, watch, 5, argv);
}

static void deliver_error(napi_env env, pvx_watch *watch, int status, const pvx_received *received,
                          const char *op) {
  napi_value error =
      status == PVX_CTRUNC ? ctrunc_error(env, received->fd_count) : pvx_errno_error(env, status, op, NULL);
  deliver_kind(env, watch, EVENT_ERROR, error);
}

static bool still_reading(const pvx_watch *watch) {
  return !watch->stopped && (watch->events & WATCH_READABLE) != 0;
}

/* Delivers what pvx_receive() reported: bytes, the end of the stream or a failure. */
static void deliver_read(napi_env env, pvx_watch *watch, int status, const pvx_received *received) {
  if (status == PVX_RECEIVED)
    deliver_received(env, watch, received);
  else
    deliver_error(env, watch, status, received, "recvmsg");
}

/* One read, delivered: false once reading this socket should stop for this batch. */
static bool read_once(napi_env env, pvx_watch *watch) {
  pvx_received received;
  int status = pvx_receive(watch->fd, watch->read_size, &received);
  if (status == PVX_WOULD_BLOCK) return false;
  deliver_read(env, watch, status, &received);
  /* A short read emptied the socket: skip the recv that would only say EAGAIN (epoll reports more). */
  return status == PVX_RECEIVED && received.bytes == (ssize_t)watch->read_size;
}

/* A poll error (EPOLLERR): what the peer sent before it reset the connection is still delivered while the
 * socket is read, then the error (its pending SO_ERROR, which reading first would report instead). */
static void serve_error(napi_env env, pvx_watch *watch, int poll_status) {
  int err = 0;
  socklen_t length = sizeof err;
  if (getsockopt(watch->fd, SOL_SOCKET, SO_ERROR, &err, &length) < 0 || err == 0) err = -poll_status;
  while (still_reading(watch)) {
    pvx_received received;
    int status = pvx_receive(watch->fd, watch->read_size, &received);
    if (status == PVX_WOULD_BLOCK || (status == PVX_RECEIVED && received.bytes == 0)) break;
    deliver_read(env, watch, status, &received);
    if (status != PVX_RECEIVED) return;
  }
  if (watch->stopped) return;
  watch_set_events(watch, 0); /* libuv stopped the handle when it reported the error */
  deliver_error(env, watch, err, NULL, "poll");
}

/* Reads before the writable event, as libuv's streams do: a write that fails there (EPIPE: the peer closed)
 * destroys the socket, and what the peer sent before it closed must have been delivered by then. */
static void serve(napi_env env, pvx_watch *watch, int ready, int poll_status) {
  if (watch->stopped) return;
  if (poll_status < 0) {
    serve_error(env, watch, poll_status);
    return;
  }
  if (ready & UV_READABLE) {
    if (watch->events & WATCH_READY) {
      deliver_kind(env, watch, EVENT_READY, NULL);
    } else {
      int reads = 0;
      while (reads++ < READ_BUDGET && still_reading(watch) && read_once(env, watch)) continue;
    }
  }
  if ((ready & UV_WRITABLE) && !watch->stopped && (watch->events & WATCH_WRITABLE))
    deliver_kind(env, watch, EVENT_WRITABLE, NULL);
}

static void on_set_check(uv_check_t *check) {
  pvx_set *set = check->data;
  napi_env env = set->env;
  uv_check_stop(check);
  set->check_started = false;
  pvx_watch *batch = set->ready_head;
  set->ready_head = set->ready_tail = NULL;
  napi_handle_scope scope;
  napi_callback_scope callback_scope;
  bool opened = !set->shutting_down && napi_open_handle_scope(env, &scope) == napi_ok;
  bool in_scope =
      opened && napi_open_callback_scope(env, NULL, set->async_context, &callback_scope) == napi_ok;
  for (pvx_watch *watch = batch; in_scope && watch != NULL; watch = watch->next_ready) {
    int ready = watch->ready, poll_status = watch->poll_status;
    watch->ready = watch->poll_status = 0;
    /* The first socket's handles go in the batch's scope, every other socket's in one of its own: a large batch
     * holds one socket's at a time (up to READ_BUDGET reads), and the usual batch of one socket opens no second
     * scope (napi allocates every scope it opens on the heap). */
    napi_handle_scope socket_scope;
    bool own_scope = watch != batch && napi_open_handle_scope(env, &socket_scope) == napi_ok;
    serve(env, watch, ready, poll_status);
    if (own_scope) napi_close_handle_scope(env, socket_scope);
  }
  /* Closing the callback scope runs the ticks and microtasks the batch queued. */
  if (in_scope) napi_close_callback_scope(env, callback_scope);
  if (opened) napi_close_handle_scope(env, scope);
  for (pvx_watch *watch = batch, *next; watch != NULL; watch = next) {
    next = watch->next_ready;
    watch->queued = false;
    watch_free_if_done(watch);
  }
}

static napi_value js_event_set(napi_env env, napi_callback_info info) {
  (void)info;
  uv_loop_t *loop;
  CALL(napi_get_uv_event_loop(env, &loop));
  pvx_set *set = calloc(1, sizeof *set);
  if (set == NULL) {
    pvx_throw_errno(env, ENOMEM, "eventSet", NULL);
    return NULL;
  }
  set->env = env;
  uv_check_init(loop, &set->check);
  uv_unref((uv_handle_t *)&set->check); /* a batch to serve never keeps the loop alive on its own */
  set->check.data = set;
  set->open_handles = 1;
  napi_value resource, resource_name, external;
  if (napi_create_object(env, &resource) != napi_ok ||
      napi_create_string_utf8(env, "PvxEventSet", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, resource, resource_name, &set->async_context) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_set_env_cleanup, set, &set->cleanup_hook) != napi_ok ||
      napi_create_external(env, set, on_set_finalized, NULL, &external) != napi_ok) {
    set->external_released = true;
    set->shutting_down = true;
    uv_close((uv_handle_t *)&set->check, on_check_closed);
    return NULL;
  }
  if (napi_type_tag_object(env, external, &set_tag) != napi_ok) return NULL; /* the hook closes the set */
  return external;
}

static napi_value js_watch(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int fd;
  int64_t events, read_size;
  napi_valuetype type;
  if (!pvx_get_args(env, info, 5, argv)) return NULL;
  pvx_set *set = pvx_get_tagged(env, argv[0], &set_tag, "not an event set");
  if (set == NULL || !pvx_get_fd(env, argv[1], &fd) || !pvx_get_integer(env, argv[2], "events", 0, 7, &events) ||
      !pvx_get_integer(env, argv[3], "readSize", 1, PVX_RECV_MAX, &read_size))
    return NULL;
  if (napi_typeof(env, argv[4], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "callback must be a function");
    return NULL;
  }
  uv_loop_t *loop;
  CALL(napi_get_uv_event_loop(env, &loop));
  pvx_watch *watch = calloc(1, sizeof *watch);
  if (watch == NULL) {
    pvx_throw_errno(env, ENOMEM, "watch", NULL);
    return NULL;
  }
  int rc = uv_poll_init(loop, &watch->handle, fd);
  if (rc < 0) {
    free(watch);
    pvx_throw_errno(env, -rc, "uv_poll_init", NULL);
    return NULL;
  }
  watch->handle.data = watch;
  watch->set = set;
  watch->fd = fd;
  watch->read_size = (size_t)read_size;
  set->open_handles++;
  watch->next = set->watches;
  if (set->watches != NULL) set->watches->prev = watch;
  set->watches = watch;
  napi_value external;
  if (napi_create_reference(env, argv[4], 1, &watch->callback) != napi_ok ||
      napi_create_external(env, watch, on_watch_finalized, NULL, &external) != napi_ok) {
    watch_stop(env, watch);
    watch->external_released = true;
    return NULL;
  }
  /* From here the finalizer frees the watch. */
  if (napi_type_tag_object(env, external, &watch_tag) != napi_ok) {
    watch_stop(env, watch);
    return NULL;
  }
  rc = watch_set_events(watch, (int)events);
  if (rc < 0) {
    watch_stop(env, watch);
    pvx_throw_errno(env, -rc, "uv_poll_start", NULL);
    return NULL;
  }
  return external;
}

static napi_value js_watch_update(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t events;
  if (!pvx_get_args(env, info, 2, argv) || !pvx_get_integer(env, argv[1], "events", 0, 7, &events)) return NULL;
  pvx_watch *watch = pvx_get_tagged(env, argv[0], &watch_tag, "not a watch handle");
  if (watch == NULL) return NULL;
  int rc = watch_set_events(watch, (int)events);
  if (rc < 0) {
    pvx_throw_errno(env, -rc, "uv_poll_start", NULL);
    return NULL;
  }
  return make_undefined(env);
}

static napi_value js_watch_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!pvx_get_args(env, info, 1, argv)) return NULL;
  pvx_watch *watch = pvx_get_tagged(env, argv[0], &watch_tag, "not a watch handle");
  if (watch == NULL) return NULL;
  watch_stop(env, watch);
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
      {"eventSet", js_event_set},
      {"watch", js_watch},
      {"watchUpdate", js_watch_update},
      {"watchStop", js_watch_stop},
      {"pipe", js_pipe},
      {"splice", js_splice},
  };
  napi_status status = napi_add_env_cleanup_hook(env, pvx_free_receive_buffer, NULL);
  for (size_t i = 0; status == napi_ok && i < sizeof functions / sizeof functions[0]; i++)
    status = pvx_export(env, exports, functions[i].name, functions[i].fn);
  return status;
}
