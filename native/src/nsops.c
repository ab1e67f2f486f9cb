/*
 * Namespace operations on pinned namespaces (pin.c): listen, connect, unlink-if-inode, stat, mknod and read a
 * small file, each queued to the pin's worker thread, which runs it inside the pinned mount namespace.
 *
 * Every path is resolved by pvx_resolve (resolve.c): no magic link is ever followed. The directory of a path
 * becomes an O_PATH fd and the last component is handled relative to it (mkdirat, mknodat, renameat, unlinkat,
 * fstatat with AT_SYMLINK_NOFOLLOW; bind after fchdir to it on the worker). connect and readFile resolve the whole
 * path to an O_PATH fd of the final inode and then go through "<fd>" in the daemon's own /proc/self/fd (opened
 * before any namespace was joined): the kernel then follows our own fd, never a name the container controls.
 *
 * JS API (the raw addon; native/namespace.ts wraps it):
 *   pin(pid) → handle (pid 0: the host)     alive(handle) → boolean     release(handle)
 *   listenIn(handle, path, mode, backlog) → Promise<{fd, ino, dev}>
 *   connectIn(handle, path, uid|null, gid|null, groups|null) → Promise<fd>
 *   unlinkIn(handle, path, ino) → Promise<boolean>      statIn(handle, path) → Promise<stat>
 *   mknodIn(handle, path, blockDevice, mode, major, minor, uid, gid) → Promise<{ino, dev}>
 *   readFileIn(handle, path, maxBytes) → Promise<Buffer>
 *   resolveSocketIn(handle, path) → Promise<fd>   resolveSocketHost(path) → fd (on the JS thread, no thread hop)
 *     an O_PATH fd of the socket inode `path` names, for connectSocket
 *   connectSocket(inode, path, pid) → fd (on the JS thread: no namespace and no thread needed once the inode is held)
 *   kernelFeatures(overrides?) → {openat2, pidfd}
 */
#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "pin.h"
#include "resolve.h"

#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1) /* 107: room for the NUL */
#define GROUPS_MAX 65536                                              /* the kernel's NGROUPS_MAX */
#define TEMP_NAME_ATTEMPTS 8

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

typedef struct ns_request ns_request;
typedef napi_value (*ns_result_fn)(napi_env env, ns_request *r);

struct ns_request {
  pvx_job job; /* first: the worker sees only this */
  /* What to do. */
  const char *op; /* JS name, used in error messages */
  ns_result_fn result;
  pvx_pin *pin;
  int pid;
  char path[PATH_MAX];
  uint32_t mode;
  int backlog;
  bool with_credentials;
  uid_t uid;
  gid_t gid;
  gid_t *groups;
  size_t group_count;
  uint64_t ino;
  bool block_device;
  uint32_t major, minor;
  size_t max_bytes;
  /* What happened (failures in job.failure). */
  int fd;
  struct stat st;
  bool removed;
  char *data;
  size_t data_len;
  napi_deferred deferred;
};

/* The JS handle of a pin: released (pin NULL) by release() or when the handle is garbage-collected. */
typedef struct pin_handle {
  pvx_pin *pin;
} pin_handle;

static void request_free(ns_request *r) {
  free(r->groups);
  free(r->data);
  free(r);
}

/* A result that cannot be delivered: close what it produced. */
static void request_dispose(pvx_job *job) {
  ns_request *r = (ns_request *)job;
  if (job->failure.err == 0 && r->fd >= 0) close(r->fd);
  request_free(r);
}

static int fail(ns_request *r, int err, const char *step) { return pvx_fail(&r->job.failure, err, step, NULL); }

static int fail_detail(ns_request *r, int err, const char *step, const char *detail) {
  return pvx_fail(&r->job.failure, err, step, detail);
}

/* ---- Errors ---- */

static napi_value request_error(napi_env env, ns_request *r) {
  const pvx_failure *why = &r->job.failure;
  char where[PATH_MAX + 32];
  if (r->pid == 0) snprintf(where, sizeof where, "%s (host)", r->path);
  else snprintf(where, sizeof where, "%s (pid %d)", r->path, r->pid);
  napi_value error = pvx_errno_error(env, why->err, r->op, where);
  napi_value value;
  if (why->detail != NULL) {
    const char *name = strerrorname_np(why->err);
    char message[PATH_MAX + 256];
    snprintf(message, sizeof message, "%s %s: %s (%s)", r->op, where, name ? name : "E?", why->detail);
    napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &value);
    napi_set_named_property(env, error, "message", value);
  }
  napi_create_string_utf8(env, r->path, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "path", value);
  napi_create_int32(env, r->pid, &value);
  napi_set_named_property(env, error, "pid", value);
  /* Node's convention: `syscall` names the call that failed. */
  napi_create_string_utf8(env, why->step ? why->step : "?", NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "syscall", value);
  return error;
}

/* ---- Path helpers (worker) ---- */

/* Splits r->path into its directory and last component; both buffers are PATH_MAX long. */
static int split_path(ns_request *r, char *dir, char *base) {
  const char *slash = strrchr(r->path, '/');
  const char *name = slash + 1;
  if (*name == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return fail_detail(r, EINVAL, "path", "the last component must be a name");
  size_t dir_len = slash == r->path ? 1 : (size_t)(slash - r->path);
  memcpy(dir, r->path, dir_len);
  dir[dir_len] = '\0';
  strcpy(base, name);
  return 0;
}

/* mkdir -p dir (0755) below root, one component at a time, each resolved without magic links. Returns an O_PATH fd
 * of dir. */
static int make_directories(ns_request *r, int root, const char *dir) {
  int current = fcntl(root, F_DUPFD_CLOEXEC, 0);
  if (current < 0) return fail(r, errno, "dup the root");
  char name[PATH_MAX];
  for (const char *at = dir; current >= 0;) {
    while (*at == '/') at++;
    if (*at == '\0') break;
    size_t len = strcspn(at, "/");
    memcpy(name, at, len);
    name[len] = '\0';
    at += len;
    int next = pvx_resolve(root, current, name, true, &r->job.failure);
    if (next < 0 && r->job.failure.err == ENOENT) {
      if (mkdirat(current, name, 0755) != 0 && errno != EEXIST) {
        fail(r, errno, "mkdir");
      } else {
        r->job.failure = (pvx_failure){0};
        next = pvx_resolve(root, current, name, true, &r->job.failure);
      }
    }
    close(current);
    current = next;
  }
  return current;
}

/* Splits r->path and opens its directory (created when `create`) below root as an O_PATH fd; base gets the last
 * component. */
static int open_parent(ns_request *r, int root, char *base, bool create) {
  char dir[PATH_MAX];
  if (split_path(r, dir, base) != 0) return -1;
  return create ? make_directories(r, root, dir) : pvx_resolve(root, AT_FDCWD, dir, true, &r->job.failure);
}

/* ".<base>.pvx<8 hex>", or ".pvx<8 hex>" when that would not fit a sun_path (relative to its directory). */
static void temp_name(const char *base, char *out, size_t size) {
  uint32_t random_bits;
  if (getrandom(&random_bits, sizeof random_bits, GRND_NONBLOCK) != sizeof random_bits) {
    static uint32_t counter;
    random_bits = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) ^ ((uint32_t)getpid() << 16);
  }
  int n = snprintf(out, size, ".%s.pvx%08x", base, random_bits);
  if (n < 0 || (size_t)n > SUN_PATH_MAX) snprintf(out, size, ".pvx%08x", random_bits);
}

/* chmod that never follows a symlink swapped in at name (fchmodat2, Linux 6.6+). Where that syscall is missing
 * (ENOSYS) or filtered (seccomp: EPERM), plain fchmodat; the random temp name keeps that window narrow. */
static int chmod_no_follow(int dir, const char *name, mode_t mode) {
  if (syscall(SYS_fchmodat2, dir, name, mode, AT_SYMLINK_NOFOLLOW) == 0) return 0;
  if (errno != ENOSYS && errno != EPERM) return -1;
  return fchmodat(dir, name, mode, 0);
}

/* Refuses when name exists and is not of the file type `kind` (S_IFSOCK, S_IFCHR, S_IFBLK). */
static int check_replaceable(ns_request *r, int dir, const char *name, mode_t kind, const char *refusal) {
  struct stat st;
  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : fail(r, errno, "lstat");
  return (st.st_mode & S_IFMT) == kind ? 0 : fail_detail(r, EEXIST, "lstat", refusal);
}

/* The last steps of a plant: read the inode (before the rename, which keeps it: so it is the one we made, and a
 * failure still leaves nothing at base), then rename temp over base. Removes temp on failure. */
static int finish_plant(ns_request *r, int dir, const char *temp, const char *base) {
  if (fstatat(dir, temp, &r->st, AT_SYMLINK_NOFOLLOW) != 0) fail(r, errno, "lstat");
  else if (renameat(dir, temp, dir, base) != 0) fail(r, errno, "rename");
  else return 0;
  unlinkat(dir, temp, 0);
  return -1;
}

/* ---- listenIn ---- */

static void listen_at(ns_request *r, int dir, const char *base) {
  char temp[PATH_MAX];
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(r, errno, "socket");
    return;
  }
  /* bind takes a name relative to the cwd: the directory we resolved. */
  if (fchdir(dir) != 0) {
    fail(r, errno, "fchdir");
    close(fd);
    return;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  int rc = -1;
  /* Born with the final permissions; chmod below makes them exact whatever the kernel did. */
  umask(~r->mode & 0777);
  for (int attempt = 0; attempt < TEMP_NAME_ATTEMPTS && rc != 0; attempt++) {
    temp_name(base, temp, sizeof temp);
    strcpy(addr.sun_path, temp);
    rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    if (rc != 0 && errno != EADDRINUSE) break;
  }
  umask(0);
  if (rc != 0) {
    fail(r, errno, "bind");
    close(fd);
    return;
  }
  if (chmod_no_follow(dir, temp, r->mode) != 0) {
    fail(r, errno, "chmod");
    unlinkat(dir, temp, 0);
  } else if (listen(fd, r->backlog) != 0) {
    fail(r, errno, "listen");
    unlinkat(dir, temp, 0);
  } else if (finish_plant(r, dir, temp, base) == 0) {
    r->fd = fd;
    return;
  }
  close(fd);
}

static void run_listen(pvx_pin *pin, pvx_job *job) {
  ns_request *r = (ns_request *)job;
  char base[PATH_MAX];
  int dir = open_parent(r, pvx_pin_root(pin), base, true);
  if (dir < 0) return;
  if (check_replaceable(r, dir, base, S_IFSOCK, "exists and is not a socket") == 0) listen_at(r, dir, base);
  close(dir);
}

static napi_value node_ids(napi_env env, ns_request *r) {
  napi_value result, value;
  napi_create_object(env, &result);
  napi_create_double(env, (double)r->st.st_ino, &value);
  napi_set_named_property(env, result, "ino", value);
  napi_create_double(env, (double)r->st.st_dev, &value);
  napi_set_named_property(env, result, "dev", value);
  return result;
}

static napi_value result_listen(napi_env env, ns_request *r) {
  napi_value result = node_ids(env, r), fd;
  napi_create_int32(env, r->fd, &fd);
  napi_set_named_property(env, result, "fd", fd);
  return result;
}

/* ---- connectIn ---- */

/* The socket inode `path` names below root, as an O_PATH fd (or -1): resolved without magic links, and refused
 * (ECONNREFUSED) when it is not a socket. */
static int resolve_socket(int root, const char *path, pvx_failure *failure) {
  int target = pvx_resolve(root, AT_FDCWD, path, false, failure);
  if (target < 0) return -1;
  struct stat st;
  if (fstat(target, &st) != 0) pvx_fail(failure, errno, "fstat", NULL);
  else if (!S_ISSOCK(st.st_mode)) pvx_fail(failure, ECONNREFUSED, "connect", "not a socket");
  else return target;
  close(target);
  return -1;
}

/* "<prefix><fd>" into out (room for the prefix and 10 digits), without printf: this runs once per dial. */
static void fd_path(char *out, const char *prefix, int fd) {
  char digits[10];
  int count = 0;
  do digits[count++] = (char)('0' + fd % 10);
  while ((fd /= 10) > 0);
  size_t length = strlen(prefix);
  memcpy(out, prefix, length);
  while (count > 0) out[length++] = digits[--count];
  out[length] = '\0';
}

/* Connects a new non-blocking socket to the socket inode `target` (an O_PATH fd) by naming "<fd>" in our own
 * /proc/self/fd: relative to pvx_self_fd_dir on a worker, whose cwd we may move; absolute on the JS thread, whose
 * root is the host's. Returns the fd or -1. */
static int connect_inode(int target, bool on_worker, pvx_failure *failure) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  int fd;
  if (on_worker && (pvx_self_fd_dir < 0 || fchdir(pvx_self_fd_dir) != 0))
    return pvx_fail(failure, pvx_self_fd_dir < 0 ? ENOENT : errno, "fchdir /proc/self/fd", NULL);
  if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
    return pvx_fail(failure, errno, "socket", NULL);
  fd_path(addr.sun_path, on_worker ? "" : "/proc/self/fd/", target);
  /* Non-blocking: a full backlog fails at once (EAGAIN) instead of parking the thread. */
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) return fd;
  pvx_fail(failure, errno, "connect", NULL);
  close(fd);
  return -1;
}

/* Connects to the socket at `path` below root (resolve_socket, then connect_inode). Returns the fd or -1. */
static int connect_resolved(int root, const char *path, bool on_worker, pvx_failure *failure) {
  int target = resolve_socket(root, path, failure);
  if (target < 0) return -1;
  int fd = connect_inode(target, on_worker, failure);
  close(target);
  return fd;
}

static void run_connect(pvx_pin *pin, pvx_job *job) {
  ns_request *r = (ns_request *)job;
  /* With credentials, the path is also resolved as that identity: its directory permissions apply. */
  if (r->with_credentials &&
      pvx_pin_assume_identity(pin, r->uid, r->gid, r->groups, r->group_count, &job->failure) != 0)
    return;
  r->fd = connect_resolved(pvx_pin_root(pin), r->path, true, &job->failure);
  if (r->with_credentials) pvx_pin_restore_identity(pin);
}

static void run_resolve_socket(pvx_pin *pin, pvx_job *job) {
  ns_request *r = (ns_request *)job;
  r->fd = resolve_socket(pvx_pin_root(pin), r->path, &job->failure);
}

static napi_value result_fd(napi_env env, ns_request *r) {
  napi_value fd;
  napi_create_int32(env, r->fd, &fd);
  return fd;
}

/* ---- unlinkIn ---- */

static void run_unlink(pvx_pin *pin, pvx_job *job) {
  ns_request *r = (ns_request *)job;
  char base[PATH_MAX];
  struct stat st;
  int dir = open_parent(r, pvx_pin_root(pin), base, false);
  if (dir < 0) {
    /* Nothing there: nothing of ours to remove. */
    if (job->failure.err == ENOENT || job->failure.err == ENOTDIR) job->failure = (pvx_failure){0};
    return;
  }
  if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) fail(r, errno, "lstat");
  } else if ((uint64_t)st.st_ino == r->ino) {
    if (unlinkat(dir, base, 0) == 0) r->removed = true;
    else if (errno != ENOENT) fail(r, errno, "unlink");
  }
  close(dir);
}

static napi_value result_removed(napi_env env, ns_request *r) {
  napi_value removed;
  napi_get_boolean(env, r->removed, &removed);
  return removed;
}

/* ---- statIn ---- */

static void run_stat(pvx_pin *pin, pvx_job *job) {
  ns_request *r = (ns_request *)job;
  char base[PATH_MAX];
  int dir = open_parent(r, pvx_pin_root(pin), base, false);
  if (dir < 0) return;
  if (fstatat(dir, base, &r->st, AT_SYMLINK_NOFOLLOW) != 0) fail(r, errno, "lstat");
  close(dir);
}

static const char *type_name(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    default: return "file";
  }
}

static void set_number(napi_env env, napi_value object, const char *name, double number) {
  napi_value value;
  napi_create_double(env, number, &value);
  napi_set_named_property(env, object, name, value);
}

static napi_value result_stat(napi_env env, ns_request *r) {
  napi_value result = node_ids(env, r), type;
  napi_create_string_utf8(env, type_name(r->st.st_mode), NAPI_AUTO_LENGTH, &type);
  napi_set_named_property(env, result, "type", type);
  set_number(env, result, "mode", r->st.st_mode & 07777);
  set_number(env, result, "uid", r->st.st_uid);
  set_number(env, result, "gid", r->st.st_gid);
  set_number(env, result, "rdevMajor", major(r->st.st_rdev));
  set_number(env, result, "rdevMinor", minor(r->st.st_rdev));
  set_number(env, result, "size", (double)r->st.st_size);
  return result;
}

/* ---- mknodIn ---- */

static void mknod_at(ns_request *r, int dir, const char *base, mode_t kind) {
  char temp[PATH_MAX];
  int rc = -1;
  /* Born with no permissions: nobody opens it before owner and mode are right. */
  for (int attempt = 0; attempt < TEMP_NAME_ATTEMPTS && rc != 0; attempt++) {
    temp_name(base, temp, sizeof temp);
    rc = mknodat(dir, temp, kind, makedev(r->major, r->minor));
    if (rc != 0 && errno != EEXIST) break;
  }
  if (rc != 0) {
    fail(r, errno, "mknod");
    return;
  }
  /* chown before chmod: chown clears set-id bits. */
  if (fchownat(dir, temp, r->uid, r->gid, AT_SYMLINK_NOFOLLOW) != 0) fail(r, errno, "chown");
  else if (chmod_no_follow(dir, temp, r->mode) != 0) fail(r, errno, "chmod");
  else {
    finish_plant(r, dir, temp, base);
    return;
  }
  unlinkat(dir, temp, 0);
}

static void run_mknod(pvx_pin *pin, pvx_job *job) {
  ns_request *r = (ns_request *)job;
  char base[PATH_MAX];
  mode_t kind = r->block_device ? S_IFBLK : S_IFCHR;
  int dir = open_parent(r, pvx_pin_root(pin), base, true);
  if (dir < 0) return;
  if (check_replaceable(r, dir, base, kind,
                        r->block_device ? "exists and is not a block device" : "exists and is not a character device") ==
      0)
    mknod_at(r, dir, base, kind);
  close(dir);
}

/* ---- readFileIn ---- */

/* Reads all of fd, at most r->max_bytes (EFBIG beyond); `size_hint` is what fstat said. */
static void read_all(ns_request *r, int fd, size_t size_hint) {
  /* The size is a hint (the file may grow, /proc files say 0): read until EOF, at most max_bytes + 1. */
  size_t capacity = size_hint + 1, limit = r->max_bytes + 1;
  r->data = malloc(capacity);
  while (r->data != NULL) {
    ssize_t n = read(fd, r->data + r->data_len, capacity - r->data_len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fail(r, errno, "read");
      break;
    }
    if (n == 0) break;
    r->data_len += (size_t)n;
    if (r->data_len > r->max_bytes) {
      fail_detail(r, EFBIG, "read", "larger than maxBytes");
      break;
    }
    if (r->data_len == capacity) {
      capacity = capacity * 2 < limit ? capacity * 2 : limit;
      char *grown = realloc(r->data, capacity);
      if (grown == NULL) free(r->data);
      r->data = grown;
    }
  }
  if (r->data == NULL) fail(r, ENOMEM, "malloc");
}

static void run_read_file(pvx_pin *pin, pvx_job *job) {
  ns_request *r = (ns_request *)job;
  int target = pvx_resolve(pvx_pin_root(pin), AT_FDCWD, r->path, false, &job->failure);
  if (target < 0) return;
  struct stat st;
  char name[16];
  int fd = -1;
  /* Checked on the O_PATH fd, before anything is opened: a device or fifo is never opened at all. */
  if (fstat(target, &st) != 0) {
    fail(r, errno, "fstat");
  } else if (!S_ISREG(st.st_mode)) {
    fail_detail(r, S_ISDIR(st.st_mode) ? EISDIR : EINVAL, "fstat", "not a regular file");
  } else if ((uint64_t)st.st_size > r->max_bytes) {
    fail_detail(r, EFBIG, "fstat", "larger than maxBytes");
  } else {
    snprintf(name, sizeof name, "%d", target);
    fd = pvx_self_fd_dir < 0 ? -1 : openat(pvx_self_fd_dir, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) fail(r, pvx_self_fd_dir < 0 ? ENOENT : errno, "open");
    else read_all(r, fd, (size_t)st.st_size);
  }
  if (fd >= 0) close(fd);
  close(target);
}

static napi_value result_buffer(napi_env env, ns_request *r) {
  napi_value buffer;
  napi_create_buffer_copy(env, r->data_len, r->data, NULL, &buffer);
  return buffer;
}

/* ---- Argument parsing and delivery (JS thread) ---- */

#define MAX_ARGS 8

/* An integer in [0, max] given as a JS number. */
static bool get_uint(napi_env env, napi_value value, double max, double *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return false;
  double number;
  napi_get_value_double(env, value, &number);
  if (!(number >= 0 && number <= max) || number != (double)(uint64_t)number) return false;
  *out = number;
  return true;
}

static bool is_nullish(napi_env env, napi_value value) {
  napi_valuetype type;
  return napi_typeof(env, value, &type) == napi_ok && (type == napi_undefined || type == napi_null);
}

/* Records an argument error unless an earlier one is already recorded. */
static void invalid(ns_request *r, const char *detail) {
  if (r->job.failure.err == 0) fail_detail(r, EINVAL, "arguments", detail);
}

/* Reads a path argument into buffer (PATH_MAX); returns false with *failure set when it is not acceptable. */
static bool get_path(napi_env env, napi_value value, char *buffer, size_t max_len, pvx_failure *failure) {
  napi_valuetype type;
  size_t len = 0;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) {
    pvx_fail(failure, EINVAL, "arguments", "path must be a string");
    return false;
  }
  napi_get_value_string_utf8(env, value, NULL, 0, &len);
  napi_get_value_string_utf8(env, value, buffer, PATH_MAX, NULL);
  if (len > max_len) {
    pvx_fail(failure, ENAMETOOLONG, "arguments",
             max_len == SUN_PATH_MAX ? "socket paths are at most 107 bytes" : "path too long");
  } else if (strlen(buffer) != len) {
    pvx_fail(failure, EINVAL, "arguments", "path contains a NUL byte");
  } else if (buffer[0] != '/') {
    pvx_fail(failure, EINVAL, "arguments", "path must be absolute");
  } else {
    return true;
  }
  return false;
}

/* The pin behind a handle argument, or NULL (not a handle: EINVAL; released: EBADF). */
static pvx_pin *get_pin(napi_env env, napi_value value, pvx_failure *failure) {
  napi_valuetype type;
  pin_handle *handle = NULL;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external ||
      napi_get_value_external(env, value, (void **)&handle) != napi_ok || handle == NULL) {
    pvx_fail(failure, EINVAL, "arguments", "not a namespace handle");
    return NULL;
  }
  if (handle->pin == NULL) pvx_fail(failure, EBADF, "arguments", "the namespace was released");
  return handle->pin;
}

/* Parses the common (handle, path) head of every operation's arguments. */
static ns_request *request_new(napi_env env, napi_callback_info info, const char *op, size_t path_max,
                               napi_value *argv, size_t *argc) {
  ns_request *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->op = op;
  r->fd = -1;
  r->job.needs_alive = true;
  r->job.dispose = request_dispose;
  *argc = MAX_ARGS;
  napi_get_cb_info(env, info, argc, argv, NULL, NULL);
  for (size_t i = *argc; i < MAX_ARGS; i++) napi_get_undefined(env, &argv[i]);
  get_path(env, argv[1], r->path, path_max, &r->job.failure);
  pvx_failure pin_failure = {0};
  r->pin = get_pin(env, argv[0], &pin_failure);
  if (r->pin != NULL) r->pid = pvx_pin_pid(r->pin);
  else if (r->job.failure.err == 0) r->job.failure = pin_failure;
  return r;
}

/* Settles a finished job's promise (the pin's thread-safe function calls this on the JS thread). */
static void deliver(napi_env env, napi_value callback, void *context, void *data) {
  (void)callback;
  ns_request *r = data;
  if (env == NULL) {
    request_dispose(&r->job);
    return;
  }
  if (r->job.failure.err != 0) {
    /* A failing operation owns no fd: each step closes what it opened. */
    napi_reject_deferred(env, r->deferred, request_error(env, r));
  } else {
    napi_resolve_deferred(env, r->deferred, r->result(env, r));
  }
  pvx_pin_settled(context);
  request_free(r);
}

/* Queues r to its pin's worker, or rejects at once when parsing already failed. Returns the promise. */
static napi_value start(napi_env env, ns_request *r, void (*run)(pvx_pin *, pvx_job *), ns_result_fn result) {
  napi_value promise;
  if (r == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  if (napi_create_promise(env, &r->deferred, &promise) != napi_ok) {
    request_free(r);
    return NULL;
  }
  r->job.run = run;
  r->result = result;
  if (r->job.failure.err == 0 && pvx_pin_submit(r->pin, &r->job)) return promise;
  if (r->job.failure.err == 0) fail_detail(r, EBADF, "submit", "the namespace was released");
  napi_reject_deferred(env, r->deferred, request_error(env, r));
  request_free(r);
  return promise;
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  pin_handle *handle = data;
  if (handle->pin != NULL) pvx_pin_close(handle->pin);
  free(handle);
}

/* Throws the error of a failed pin: "pid N is not in a container" as it stands, else "pin <pid>: CODE (text)". */
static void throw_pin_error(napi_env env, int pid, const pvx_failure *why) {
  char where[32];
  snprintf(where, sizeof where, "pid %d", pid);
  napi_value error = pvx_errno_error(env, why->err, "pin", where), value;
  if (why->detail != NULL) {
    napi_create_string_utf8(env, why->detail, NAPI_AUTO_LENGTH, &value);
    napi_set_named_property(env, error, "message", value);
  }
  napi_create_int32(env, pid, &value);
  napi_set_named_property(env, error, "pid", value);
  napi_create_string_utf8(env, why->step, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "syscall", value);
  napi_throw(env, error);
}

/* pin(pid) → handle. pid 0: the host. */
static napi_value pin(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  double pid;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !get_uint(env, argv[0], INT32_MAX, &pid)) {
    pvx_throw_errno(env, EINVAL, "pin", "pid must be an integer >= 0");
    return NULL;
  }
  pin_handle *handle = calloc(1, sizeof *handle);
  pvx_failure why = {0};
  char detail[64];
  if (handle == NULL || (handle->pin = pvx_pin_open(env, (int)pid, deliver, &why, detail, sizeof detail)) == NULL) {
    if (handle == NULL) why.err = ENOMEM, why.step = "pin";
    free(handle);
    throw_pin_error(env, (int)pid, &why);
    return NULL;
  }
  if (napi_create_external(env, handle, handle_finalize, NULL, &result) != napi_ok) {
    handle_finalize(env, handle, NULL);
    return NULL;
  }
  return result;
}

/* alive(handle) → false once the pinned process has exited. */
static napi_value alive(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) napi_get_undefined(env, &argv[0]);
  pvx_failure why = {0};
  pvx_pin *pin = get_pin(env, argv[0], &why);
  if (pin == NULL) {
    pvx_throw_errno(env, why.err, "alive", why.detail);
    return NULL;
  }
  napi_value result;
  napi_get_boolean(env, pvx_pin_alive(pin), &result);
  return result;
}

/* release(handle): queued operations still run; later ones are refused (EBADF). Idempotent. */
static napi_value release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_valuetype type = napi_undefined;
  pin_handle *handle = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  if (type != napi_external || napi_get_value_external(env, argv[0], (void **)&handle) != napi_ok) {
    pvx_throw_errno(env, EINVAL, "release", "not a namespace handle");
    return NULL;
  }
  if (handle->pin != NULL) pvx_pin_close(handle->pin);
  handle->pin = NULL;
  return NULL;
}

/* listenIn(handle, path, mode, backlog) → Promise<{fd, ino, dev}> */
static napi_value listen_in(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  size_t argc;
  ns_request *r = request_new(env, info, "listenIn", SUN_PATH_MAX, argv, &argc);
  double mode, backlog;
  if (r != NULL) {
    if (!get_uint(env, argv[2], 07777, &mode)) invalid(r, "mode must be permission bits");
    else if (!get_uint(env, argv[3], INT32_MAX, &backlog)) invalid(r, "backlog must be an integer >= 0");
    else {
      r->mode = (uint32_t)mode;
      r->backlog = (int)backlog;
    }
  }
  return start(env, r, run_listen, result_listen);
}

/* connectIn(handle, path, uid|null, gid|null, groups|null) → Promise<fd> */
static napi_value connect_in(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  size_t argc;
  ns_request *r = request_new(env, info, "connectIn", SUN_PATH_MAX, argv, &argc);
  if (r == NULL || r->job.failure.err != 0 ||
      (is_nullish(env, argv[2]) && is_nullish(env, argv[3]) && is_nullish(env, argv[4])))
    return start(env, r, run_connect, result_fd);
  double uid, gid;
  uint32_t count = 0;
  bool is_array = false;
  if (!get_uint(env, argv[2], UINT32_MAX - 1, &uid) || !get_uint(env, argv[3], UINT32_MAX - 1, &gid)) {
    invalid(r, "uid and gid must both be given, integers < 2^32 - 1");
  } else if (!is_nullish(env, argv[4]) &&
             (napi_is_array(env, argv[4], &is_array) != napi_ok || !is_array ||
              napi_get_array_length(env, argv[4], &count) != napi_ok || count > GROUPS_MAX)) {
    invalid(r, "groups must be an array of at most 65536 gids");
  } else {
    r->with_credentials = true;
    r->uid = (uid_t)uid;
    r->gid = (gid_t)gid;
    r->group_count = count;
    r->groups = calloc(count > 0 ? count : 1, sizeof *r->groups);
    if (r->groups == NULL) fail(r, ENOMEM, "arguments");
    for (uint32_t i = 0; i < count && r->job.failure.err == 0; i++) {
      napi_value element;
      double group;
      napi_get_element(env, argv[4], i, &element);
      if (get_uint(env, element, UINT32_MAX - 1, &group)) r->groups[i] = (gid_t)group;
      else invalid(r, "groups must be an array of at most 65536 gids");
    }
  }
  return start(env, r, run_connect, result_fd);
}

/* unlinkIn(handle, path, ino) → Promise<boolean>. Runs also after the pinned process is gone (cleanup). */
static napi_value unlink_in(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  size_t argc;
  ns_request *r = request_new(env, info, "unlinkIn", PATH_MAX - 1, argv, &argc);
  double ino;
  if (r != NULL) {
    r->job.needs_alive = false;
    if (get_uint(env, argv[2], 9007199254740991.0, &ino)) r->ino = (uint64_t)ino;
    else invalid(r, "ino must be an integer >= 0");
  }
  return start(env, r, run_unlink, result_removed);
}

/* statIn(handle, path) → Promise<NodeStat> */
static napi_value stat_in(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  size_t argc;
  return start(env, request_new(env, info, "statIn", PATH_MAX - 1, argv, &argc), run_stat, result_stat);
}

/* mknodIn(handle, path, blockDevice, mode, major, minor, uid, gid) → Promise<{ino, dev}> */
static napi_value mknod_in(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  size_t argc;
  ns_request *r = request_new(env, info, "mknodIn", PATH_MAX - 1, argv, &argc);
  double mode, major_number, minor_number, uid, gid;
  if (r != NULL) {
    if (napi_get_value_bool(env, argv[2], &r->block_device) != napi_ok) invalid(r, "blockDevice must be a boolean");
    else if (!get_uint(env, argv[3], 07777, &mode)) invalid(r, "mode must be permission bits");
    else if (!get_uint(env, argv[4], 4095, &major_number)) invalid(r, "major must be an integer in [0, 4095]");
    else if (!get_uint(env, argv[5], 1048575, &minor_number)) invalid(r, "minor must be an integer in [0, 1048575]");
    else if (!get_uint(env, argv[6], UINT32_MAX - 1, &uid)) invalid(r, "uid must be an integer < 2^32 - 1");
    else if (!get_uint(env, argv[7], UINT32_MAX - 1, &gid)) invalid(r, "gid must be an integer < 2^32 - 1");
    else {
      r->mode = (uint32_t)mode;
      r->major = (uint32_t)major_number;
      r->minor = (uint32_t)minor_number;
      r->uid = (uid_t)uid;
      r->gid = (gid_t)gid;
    }
  }
  return start(env, r, run_mknod, node_ids);
}

/* readFileIn(handle, path, maxBytes) → Promise<Buffer> */
static napi_value read_file_in(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  size_t argc;
  ns_request *r = request_new(env, info, "readFileIn", PATH_MAX - 1, argv, &argc);
  double max_bytes;
  if (r != NULL) {
    /* The cap keeps max_bytes + 1 and buffer doubling far from overflow. */
    if (get_uint(env, argv[2], (double)(1u << 30), &max_bytes)) r->max_bytes = (size_t)max_bytes;
    else invalid(r, "maxBytes must be an integer in [0, 2^30]");
  }
  return start(env, r, run_read_file, result_buffer);
}

/* resolveSocketIn(handle, path) → Promise<fd>: an O_PATH fd of the socket inode, for connectSocket. */
static napi_value resolve_socket_in(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  size_t argc;
  return start(env, request_new(env, info, "resolveSocketIn", SUN_PATH_MAX, argv, &argc), run_resolve_socket,
               result_fd);
}

/* A request run at once on the JS thread: its path (argv[0]) parsed, its pid `pid`. NULL (thrown) without memory. */
static ns_request *sync_request(napi_env env, const char *op, napi_value path, int pid) {
  ns_request *r = calloc(1, sizeof *r);
  if (r == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  r->op = op;
  r->pid = pid;
  r->fd = -1;
  get_path(env, path, r->path, SUN_PATH_MAX, &r->job.failure);
  return r;
}

/* The fd a sync_request produced, or its error thrown; frees r. */
static napi_value sync_result(napi_env env, ns_request *r) {
  napi_value result = NULL;
  if (r->job.failure.err != 0) napi_throw(env, request_error(env, r));
  else napi_create_int32(env, r->fd, &result);
  request_free(r);
  return result;
}

/* resolveSocketHost(path) → fd, on the JS thread: as resolveSocketIn on the host, which needs no thread. */
static napi_value resolve_socket_host(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) napi_get_undefined(env, &argv[0]);
  ns_request *r = sync_request(env, "resolveSocketIn", argv[0], 0);
  if (r == NULL) return NULL;
  /* The host's root, this thread's (kept: it never changes). */
  static int host_root = -1;
  if (r->job.failure.err == 0 && (host_root >= 0 || (host_root = pvx_open_root(&r->job.failure)) >= 0))
    r->fd = resolve_socket(host_root, r->path, &r->job.failure);
  return sync_result(env, r);
}

/* connectSocket(inode, path, pid) → fd, on the JS thread: connects to the socket inode that an O_PATH fd from
 * resolveSocketIn or resolveSocketHost holds (it stays the caller's). path and pid only label an error: a dial
 * per connection allocates nothing. */
static napi_value connect_socket(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  double inode, pid;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !get_uint(env, argv[0], INT32_MAX, &inode) || !get_uint(env, argv[2], INT32_MAX, &pid)) {
    pvx_throw_errno(env, EINVAL, "connectSocket", "inode and pid must be integers >= 0");
    return NULL;
  }
  pvx_failure why = {0};
  int fd = connect_inode((int)inode, false, &why);
  if (fd >= 0) {
    napi_create_int32(env, fd, &result);
    return result;
  }
  ns_request *r = sync_request(env, "connectIn", argv[1], (int)pid);
  if (r == NULL) return NULL;
  r->job.failure = why;
  return sync_result(env, r);
}

static bool get_flag(napi_env env, napi_value object, const char *name, bool *out) {
  bool has = false, value;
  napi_value property;
  if (napi_has_named_property(env, object, name, &has) != napi_ok || !has) return false;
  napi_get_named_property(env, object, name, &property);
  if (napi_get_value_bool(env, property, &value) != napi_ok) return false;
  *out = value;
  return true;
}

/* kernelFeatures({openat2?, pidfd?}) → what is in use. Features can be turned off (fallbacks, for tests) and
 * back on, never on where the kernel lacks them. */
static napi_value kernel_features(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result, value;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  bool flag;
  if (type == napi_object) {
    if (get_flag(env, argv[0], "openat2", &flag)) pvx_features.openat2 = flag && pvx_probed_features.openat2;
    if (get_flag(env, argv[0], "pidfd", &flag)) pvx_features.pidfd = flag && pvx_probed_features.pidfd;
  }
  napi_create_object(env, &result);
  napi_get_boolean(env, pvx_features.openat2, &value);
  napi_set_named_property(env, result, "openat2", value);
  napi_get_boolean(env, pvx_features.pidfd, &value);
  napi_set_named_property(env, result, "pidfd", value);
  return result;
}

napi_status pvx_init_nsops(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {
      {"pin", pin},
      {"alive", alive},
      {"release", release},
      {"listenIn", listen_in},
      {"connectIn", connect_in},
      {"unlinkIn", unlink_in},
      {"statIn", stat_in},
      {"mknodIn", mknod_in},
      {"readFileIn", read_file_in},
      {"resolveSocketIn", resolve_socket_in},
      {"resolveSocketHost", resolve_socket_host},
      {"connectSocket", connect_socket},
      {"kernelFeatures", kernel_features},
  };
  pvx_resolve_init();
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_status status = pvx_export(env, exports, functions[i].name, functions[i].fn);
    if (status != napi_ok) return status;
  }
  return napi_ok;
}
