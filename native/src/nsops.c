/*
 * Namespace operations: listen, connect, unlink-if-inode, stat, mknod and read-file inside the mount namespace
 * of a process (pid 0 = the host's).
 *
 * Each operation is a napi_async_work whose execute callback runs the operation on a fresh pthread and joins it.
 * That thread unshares its fs state (root, cwd, umask) before joining the namespace, and changes credentials
 * with raw syscalls, so neither Node's threads nor libuv's pool threads ever see a changed root, cwd, umask
 * or identity. The thread exits when the operation ends.
 */
#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1) /* 107: room for the NUL */
#define GROUPS_MAX 65536                                              /* the kernel's NGROUPS_MAX */
#define THREAD_STACK_SIZE (256 * 1024)
#define TEMP_NAME_ATTEMPTS 8

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

typedef struct ns_request ns_request;
typedef void (*ns_run_fn)(ns_request *r);
typedef napi_value (*ns_result_fn)(napi_env env, ns_request *r);

struct ns_request {
  /* What to do. */
  const char *op; /* JS name, used in error messages */
  ns_run_fn run;
  ns_result_fn result;
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
  /* What happened: err != 0 means failure at `step`; `detail` replaces strerror's text when set. */
  int err;
  const char *step;
  const char *detail;
  int fd;
  struct stat st;
  bool removed;
  char *data;
  size_t data_len;
  /* Plumbing. */
  napi_deferred deferred;
  napi_async_work work;
};

static void request_free(ns_request *r) {
  free(r->groups);
  free(r->data);
  free(r);
}

static int fail(ns_request *r, int err, const char *step) {
  r->err = err;
  r->step = step;
  return -1;
}

static int fail_detail(ns_request *r, int err, const char *step, const char *detail) {
  r->detail = detail;
  return fail(r, err, step);
}

/* ---- Errors ---- */

static napi_value request_error(napi_env env, const char *op, const char *path, int pid, int err, const char *step,
                                const char *detail) {
  char where[PATH_MAX + 32];
  snprintf(where, sizeof where, "%s (pid %d)", path, pid);
  napi_value error = pvx_errno_error(env, err, op, where);
  napi_value value;
  if (detail != NULL) {
    const char *name = strerrorname_np(err);
    char message[PATH_MAX + 256];
    snprintf(message, sizeof message, "%s %s: %s (%s)", op, where, name ? name : "E?", detail);
    napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &value);
    napi_set_named_property(env, error, "message", value);
  }
  napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "path", value);
  napi_create_int32(env, pid, &value);
  napi_set_named_property(env, error, "pid", value);
  /* Node's convention: `syscall` names the call that failed. */
  napi_create_string_utf8(env, step, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "syscall", value);
  return error;
}

/* ---- The dedicated thread ---- */

/* Gives the thread its own fs state and, for pid != 0, joins the mount namespace of pid (cwd becomes its root). */
static int enter_namespace(ns_request *r) {
  int ns_fd = -1;
  if (r->pid != 0) {
    char ns_path[64];
    snprintf(ns_path, sizeof ns_path, "/proc/%d/ns/mnt", r->pid);
    ns_fd = open(ns_path, O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0) return fail(r, errno == ENOENT ? ESRCH : errno, "open /proc/<pid>/ns/mnt");
  }
  if (unshare(CLONE_FS) != 0) {
    int err = errno;
    if (ns_fd >= 0) close(ns_fd);
    return fail(r, err, "unshare");
  }
  /* Our own umask now: modes below are exactly what we ask for. */
  umask(0);
  if (ns_fd < 0) return 0;
  int rc = setns(ns_fd, CLONE_NEWNS);
  int err = errno;
  close(ns_fd);
  return rc == 0 ? 0 : fail(r, err, "setns");
}

static void *ns_thread_main(void *arg) {
  ns_request *r = arg;
  /* Named, so that /proc/<pid>/task/<tid>/comm tells these threads apart from Node's. */
  prctl(PR_SET_NAME, "pvx-ns");
  if (enter_namespace(r) == 0) r->run(r);
  return NULL;
}

static void execute(napi_env env, void *data) {
  (void)env;
  ns_request *r = data;
  pthread_attr_t attr;
  pthread_t thread;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
  /* The thread is born with every signal blocked: no handler ever runs with another root or identity. */
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int rc = pthread_create(&thread, &attr, ns_thread_main, r);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    fail(r, rc, "pthread_create");
    return;
  }
  pthread_join(thread, NULL);
}

static void complete(napi_env env, napi_status status, void *data) {
  ns_request *r = data;
  if (status != napi_ok && r->err == 0) fail(r, ECANCELED, "async work");
  if (r->err != 0) {
    /* A failing operation owns no fd: each step closes what it opened. */
    napi_reject_deferred(env, r->deferred, request_error(env, r->op, r->path, r->pid, r->err, r->step, r->detail));
  } else {
    napi_resolve_deferred(env, r->deferred, r->result(env, r));
  }
  napi_delete_async_work(env, r->work);
  request_free(r);
}

/* ---- Path helpers (run on the dedicated thread) ---- */

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

/* mkdir -p dir (0755); components that exist are followed as the namespace resolves them. */
static int make_parents(ns_request *r, const char *dir) {
  char prefix[PATH_MAX];
  size_t len = strlen(dir);
  for (size_t i = 1; i <= len; i++) {
    if (dir[i] != '/' && dir[i] != '\0') continue;
    if (dir[i - 1] == '/') continue; /* "//" or the root */
    memcpy(prefix, dir, i);
    prefix[i] = '\0';
    if (mkdir(prefix, 0755) != 0 && errno != EEXIST) return fail(r, errno, "mkdir");
  }
  return 0;
}

/* Creates the parents and makes dir the thread's cwd, so every later step works on short relative names. */
static int enter_directory(ns_request *r, char *base) {
  char dir[PATH_MAX];
  if (split_path(r, dir, base) != 0) return -1;
  if (make_parents(r, dir) != 0) return -1;
  if (chdir(dir) != 0) return fail(r, errno, "chdir");
  return 0;
}

/* ".<base>.pvx<8 hex>", or ".pvx<8 hex>" when that would not fit a sun_path (relative to the cwd). */
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
static int chmod_no_follow(const char *name, mode_t mode) {
  if (syscall(SYS_fchmodat2, AT_FDCWD, name, mode, AT_SYMLINK_NOFOLLOW) == 0) return 0;
  if (errno != ENOSYS && errno != EPERM) return -1;
  return fchmodat(AT_FDCWD, name, mode, 0);
}

/* Refuses when name exists and is not of the file type `kind` (S_IFSOCK, S_IFCHR, S_IFBLK). */
static int check_replaceable(ns_request *r, const char *name, mode_t kind, const char *refusal) {
  struct stat st;
  if (fstatat(AT_FDCWD, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : fail(r, errno, "lstat");
  return (st.st_mode & S_IFMT) == kind ? 0 : fail_detail(r, EEXIST, "lstat", refusal);
}

/* ---- listenIn ---- */

static void run_listen(ns_request *r) {
  char base[PATH_MAX], temp[PATH_MAX];
  if (enter_directory(r, base) != 0) return;
  if (check_replaceable(r, base, S_IFSOCK, "exists and is not a socket") != 0) return;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(r, errno, "socket");
    return;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  int rc = -1;
  /* Born with the final permissions; fchmodat below makes them exact whatever the kernel did. */
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
  /* The inode is read before the rename (which keeps it): so it is the one we bound, and a failure here
   * still leaves nothing planted at path. */
  if (chmod_no_follow(temp, r->mode) != 0) {
    fail(r, errno, "chmod");
  } else if (listen(fd, r->backlog) != 0) {
    fail(r, errno, "listen");
  } else if (fstatat(AT_FDCWD, temp, &r->st, AT_SYMLINK_NOFOLLOW) != 0) {
    fail(r, errno, "lstat");
  } else if (renameat(AT_FDCWD, temp, AT_FDCWD, base) != 0) {
    fail(r, errno, "rename");
  } else {
    r->fd = fd;
    return;
  }
  unlinkat(AT_FDCWD, temp, 0);
  close(fd);
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

static void run_connect(ns_request *r) {
  /* Raw syscalls: glibc's wrappers would switch every thread of the process. Order: groups, gid, then uid. */
  if (r->with_credentials) {
    if (syscall(SYS_setgroups, r->group_count, r->groups) != 0) {
      fail(r, errno, "setgroups");
      return;
    }
    if (syscall(SYS_setresgid, r->gid, r->gid, r->gid) != 0) {
      fail(r, errno, "setresgid");
      return;
    }
    if (syscall(SYS_setresuid, r->uid, r->uid, r->uid) != 0) {
      fail(r, errno, "setresuid");
      return;
    }
  }
  /* Non-blocking: a full backlog fails at once (EAGAIN) instead of parking the thread. */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(r, errno, "socket");
    return;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strcpy(addr.sun_path, r->path);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    fail(r, errno, "connect");
    close(fd);
    return;
  }
  r->fd = fd;
}

static napi_value result_fd(napi_env env, ns_request *r) {
  napi_value fd;
  napi_create_int32(env, r->fd, &fd);
  return fd;
}

/* ---- unlinkIn ---- */

static void run_unlink(ns_request *r) {
  struct stat st;
  if (fstatat(AT_FDCWD, r->path, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) fail(r, errno, "lstat");
    return;
  }
  if ((uint64_t)st.st_ino != r->ino) return;
  if (unlinkat(AT_FDCWD, r->path, 0) != 0) {
    if (errno != ENOENT) fail(r, errno, "unlink");
    return;
  }
  r->removed = true;
}

static napi_value result_removed(napi_env env, ns_request *r) {
  napi_value removed;
  napi_get_boolean(env, r->removed, &removed);
  return removed;
}

/* ---- statIn ---- */

static void run_stat(ns_request *r) {
  if (fstatat(AT_FDCWD, r->path, &r->st, AT_SYMLINK_NOFOLLOW) != 0) fail(r, errno, "lstat");
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

static void run_mknod(ns_request *r) {
  char base[PATH_MAX], temp[PATH_MAX];
  mode_t kind = r->block_device ? S_IFBLK : S_IFCHR;
  if (enter_directory(r, base) != 0) return;
  if (check_replaceable(r, base, kind,
                        r->block_device ? "exists and is not a block device" : "exists and is not a character device") !=
      0)
    return;
  int rc = -1;
  /* Born with no permissions: nobody opens it before owner and mode are right. */
  for (int attempt = 0; attempt < TEMP_NAME_ATTEMPTS && rc != 0; attempt++) {
    temp_name(base, temp, sizeof temp);
    rc = mknodat(AT_FDCWD, temp, kind, makedev(r->major, r->minor));
    if (rc != 0 && errno != EEXIST) break;
  }
  if (rc != 0) {
    fail(r, errno, "mknod");
    return;
  }
  /* chown before chmod: chown clears set-id bits. */
  if (fchownat(AT_FDCWD, temp, r->uid, r->gid, AT_SYMLINK_NOFOLLOW) != 0) {
    fail(r, errno, "chown");
  } else if (chmod_no_follow(temp, r->mode) != 0) {
    fail(r, errno, "chmod");
  } else if (fstatat(AT_FDCWD, temp, &r->st, AT_SYMLINK_NOFOLLOW) != 0) { /* before rename: see run_listen */
    fail(r, errno, "lstat");
  } else if (renameat(AT_FDCWD, temp, AT_FDCWD, base) != 0) {
    fail(r, errno, "rename");
  } else {
    return;
  }
  unlinkat(AT_FDCWD, temp, 0);
}

/* ---- readFileIn ---- */

static void run_read_file(ns_request *r) {
  /* O_NONBLOCK: opening a fifo must not park the thread; it is refused below anyway. */
  int fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    fail(r, errno, "open");
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    fail(r, errno, "fstat");
  } else if (!S_ISREG(st.st_mode)) {
    fail_detail(r, S_ISDIR(st.st_mode) ? EISDIR : EINVAL, "fstat", "not a regular file");
  } else if ((uint64_t)st.st_size > r->max_bytes) {
    fail_detail(r, EFBIG, "fstat", "larger than maxBytes");
  } else {
    /* The size is a hint (the file may grow, /proc files say 0): read until EOF, at most max_bytes + 1. */
    size_t capacity = (size_t)st.st_size + 1, limit = r->max_bytes + 1;
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
  close(fd);
}

static napi_value result_buffer(napi_env env, ns_request *r) {
  napi_value buffer;
  napi_create_buffer_copy(env, r->data_len, r->data, NULL, &buffer);
  return buffer;
}

/* ---- Argument parsing (on the JS thread) ---- */

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
  if (r->err == 0) fail_detail(r, EINVAL, "arguments", detail);
}

/* Reads the path argument; on failure sets r->err/detail (r->path holds what could be read, for the message). */
static void get_path(napi_env env, napi_value value, ns_request *r, size_t max_len) {
  napi_valuetype type;
  size_t len = 0;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) {
    fail_detail(r, EINVAL, "arguments", "path must be a string");
    return;
  }
  napi_get_value_string_utf8(env, value, NULL, 0, &len);
  napi_get_value_string_utf8(env, value, r->path, sizeof r->path, NULL);
  if (len > max_len) {
    fail_detail(r, ENAMETOOLONG, "arguments",
                max_len == SUN_PATH_MAX ? "socket paths are at most 107 bytes" : "path too long");
  } else if (strlen(r->path) != len) {
    fail_detail(r, EINVAL, "arguments", "path contains a NUL byte");
  } else if (r->path[0] != '/') {
    fail_detail(r, EINVAL, "arguments", "path must be absolute");
  }
}

/* Parses the common (pid, path) head of every operation's arguments. */
static ns_request *request_new(napi_env env, napi_callback_info info, const char *op, size_t path_max,
                               napi_value *argv, size_t *argc) {
  ns_request *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->op = op;
  r->fd = -1;
  *argc = MAX_ARGS;
  napi_get_cb_info(env, info, argc, argv, NULL, NULL);
  for (size_t i = *argc; i < MAX_ARGS; i++) napi_get_undefined(env, &argv[i]);
  double pid = 0;
  get_path(env, argv[1], r, path_max);
  if (!get_uint(env, argv[0], INT32_MAX, &pid)) invalid(r, "pid must be an integer >= 0");
  r->pid = (int)pid;
  return r;
}

/* Queues r, or rejects at once when parsing already failed. Returns the promise. */
static napi_value start(napi_env env, ns_request *r, ns_run_fn run, ns_result_fn result) {
  napi_value promise;
  if (r == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  if (napi_create_promise(env, &r->deferred, &promise) != napi_ok) {
    request_free(r);
    return NULL;
  }
  r->run = run;
  r->result = result;
  napi_value name;
  napi_create_string_utf8(env, r->op, NAPI_AUTO_LENGTH, &name);
  if (r->err == 0 &&
      napi_create_async_work(env, NULL, name, execute, complete, r, &r->work) == napi_ok &&
      napi_queue_async_work(env, r->work) == napi_ok)
    return promise;
  if (r->err == 0) fail(r, EAGAIN, "async work");
  napi_reject_deferred(env, r->deferred, request_error(env, r->op, r->path, r->pid, r->err, r->step, r->detail));
  if (r->work != NULL) napi_delete_async_work(env, r->work);
  request_free(r);
  return promise;
}

/* listenIn(pid, path, mode, backlog) → Promise<{fd, ino, dev}> */
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

/* connectIn(pid, path, uid|null, gid|null, groups|null) → Promise<fd> */
static napi_value connect_in(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  size_t argc;
  ns_request *r = request_new(env, info, "connectIn", SUN_PATH_MAX, argv, &argc);
  if (r == NULL || r->err != 0 || (is_nullish(env, argv[2]) && is_nullish(env, argv[3]) && is_nullish(env, argv[4])))
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
    for (uint32_t i = 0; i < count && r->err == 0; i++) {
      napi_value element;
      double group;
      napi_get_element(env, argv[4], i, &element);
      if (get_uint(env, element, UINT32_MAX - 1, &group)) r->groups[i] = (gid_t)group;
      else invalid(r, "groups must be an array of at most 65536 gids");
    }
  }
  return start(env, r, run_connect, result_fd);
}

/* unlinkIn(pid, path, ino) → Promise<boolean> */
static napi_value unlink_in(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  size_t argc;
  ns_request *r = request_new(env, info, "unlinkIn", PATH_MAX - 1, argv, &argc);
  double ino;
  if (r != NULL) {
    if (get_uint(env, argv[2], 9007199254740991.0, &ino)) r->ino = (uint64_t)ino;
    else invalid(r, "ino must be an integer >= 0");
  }
  return start(env, r, run_unlink, result_removed);
}

/* statIn(pid, path) → Promise<NodeStat> */
static napi_value stat_in(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  size_t argc;
  return start(env, request_new(env, info, "statIn", PATH_MAX - 1, argv, &argc), run_stat, result_stat);
}

/* mknodIn(pid, path, blockDevice, mode, major, minor, uid, gid) → Promise<{ino, dev}> */
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

/* readFileIn(pid, path, maxBytes) → Promise<Buffer> */
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

napi_status pvx_init_nsops(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {
      {"listenIn", listen_in}, {"connectIn", connect_in}, {"unlinkIn", unlink_in},
      {"statIn", stat_in},     {"mknodIn", mknod_in},     {"readFileIn", read_file_in},
  };
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_status status = pvx_export(env, exports, functions[i].name, functions[i].fn);
    if (status != napi_ok) return status;
  }
  return napi_ok;
}
