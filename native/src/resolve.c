/*
 * Path resolution without magic links.
 *
 * A container may make any component of a path we resolve inside it a symlink, and if its /proc shows host pids
 * (a container sharing the host's pid namespace) a symlink to /proc/<host pid>/root/... or /proc/<pid>/fd/N
 * leads out of the container: the kernel follows those "magic links" to another process's root or open file,
 * whatever mount namespace the resolving thread is in. So every path goes through pvx_resolve:
 *
 * - Linux >= 5.6: openat2(RESOLVE_NO_MAGICLINKS), one system call; a magic link anywhere fails with ELOOP.
 * - Older kernels (openat2 answers ENOSYS): a walk, one component at a time with O_PATH|O_NOFOLLOW; ordinary
 *   symlinks are followed by hand (at most 40, like the kernel), and any symlink that lives on procfs is refused
 *   (every magic link does; so do /proc/self and /proc/thread-self, which a container path has no need for).
 *
 * Both return an O_PATH fd; callers then work relative to it (the *at calls, fchdir on a dedicated thread) or
 * through "<fd>" under pvx_self_fd_dir, so nothing they do resolves the path a second time.
 */
#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define MAX_SYMLINK_HOPS 40 /* the kernel's MAXSYMLINKS */

pvx_kernel_features pvx_probed_features, pvx_features;
int pvx_proc_dir = -1, pvx_self_fd_dir = -1;

static const char MAGIC_LINK_REFUSED[] = "a magic link (/proc/<pid>/root, /proc/<pid>/fd/...) or over 40 symlinks";
static const char PROC_SYMLINK_REFUSED[] = "a symlink on procfs (a magic link) on the path";

int pvx_fail(pvx_failure *failure, int err, const char *step, const char *detail) {
  failure->err = err;
  failure->step = step;
  failure->detail = detail;
  return -1;
}

static void probe(void) {
  struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
  pvx_probed_features.openat2 = fd >= 0 || errno != ENOSYS;
  if (fd >= 0) close(fd);
  fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  pvx_probed_features.pidfd = fd >= 0 || errno != ENOSYS;
  if (fd >= 0) close(fd);
  pvx_features = pvx_probed_features;
  pvx_proc_dir = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (pvx_proc_dir >= 0) pvx_self_fd_dir = openat(pvx_proc_dir, "self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

void pvx_resolve_init(void) {
  /* Once per process, also when several Node environments load the addon. */
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, probe);
}

int pvx_open_root(pvx_failure *failure) {
  /* thread-self (Linux 3.17) of our own procfs: the calling thread's root, whatever namespace it joined. */
  int fd = pvx_proc_dir < 0 ? -1 : openat(pvx_proc_dir, "thread-self/root", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  return fd >= 0 ? fd : pvx_fail(failure, errno, "open the root", NULL);
}

/* An absolute path as one relative to the root: without its leading slashes ("." for the root itself). */
static const char *below_root(const char *path) {
  while (*path == '/') path++;
  return *path == '\0' ? "." : path;
}

static int resolve_openat2(int root, int dirfd, const char *path, bool directory, pvx_failure *failure) {
  struct open_how how = {
      .flags = O_PATH | O_CLOEXEC | (directory ? O_DIRECTORY : 0),
      .resolve = RESOLVE_NO_MAGICLINKS,
  };
  if (path[0] == '/') {
    dirfd = root;
    path = below_root(path);
  }
  for (int attempt = 0;; attempt++) {
    int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0) return fd;
    /* EAGAIN: a concurrent rename or mount; the kernel asks for a retry. */
    if (errno == EAGAIN && attempt < 8) continue;
    return pvx_fail(failure, errno, "openat2", errno == ELOOP ? MAGIC_LINK_REFUSED : NULL);
  }
}

/* A copy of dirfd (AT_FDCWD: of the cwd) for a walk to move along. */
static int walk_from(int dirfd, pvx_failure *failure) {
  int fd = dirfd == AT_FDCWD ? open(".", O_PATH | O_DIRECTORY | O_CLOEXEC) : fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  return fd >= 0 ? fd : pvx_fail(failure, errno, "open", NULL);
}

/* Reads the symlink link_fd (an O_PATH fd of it) into target, refusing procfs and more than 40 hops. */
static int read_symlink(int link_fd, char *target, size_t size, int *hops, pvx_failure *failure) {
  struct statfs fs;
  if (fstatfs(link_fd, &fs) != 0) return pvx_fail(failure, errno, "fstatfs", NULL);
  if (fs.f_type == PROC_SUPER_MAGIC) return pvx_fail(failure, ELOOP, "walk", PROC_SYMLINK_REFUSED);
  if (++*hops > MAX_SYMLINK_HOPS) return pvx_fail(failure, ELOOP, "walk", "over 40 symlinks");
  ssize_t n = readlinkat(link_fd, "", target, size);
  if (n < 0) return pvx_fail(failure, errno, "readlink", NULL);
  if ((size_t)n >= size) return pvx_fail(failure, ENAMETOOLONG, "readlink", "symlink target too long");
  target[n] = '\0';
  return 0;
}

/* Replaces the walk's remaining path with `target` + "/" + `rest`. */
static int splice_link(char *pending, size_t size, const char *target, const char *rest, pvx_failure *failure) {
  char joined[2 * PATH_MAX + 1];
  int n = snprintf(joined, sizeof joined, "%s/%s", target, rest);
  if (n < 0 || (size_t)n >= size) return pvx_fail(failure, ENAMETOOLONG, "readlink", "path too long");
  memcpy(pending, joined, (size_t)n + 1);
  return 0;
}

static int resolve_walk(int root, int dirfd, const char *path, bool directory, pvx_failure *failure) {
  char pending[2 * PATH_MAX];
  if (strlen(path) >= PATH_MAX) return pvx_fail(failure, ENAMETOOLONG, "walk", NULL);
  strcpy(pending, path);
  int current = walk_from(path[0] == '/' ? root : dirfd, failure);
  int hops = 0;
  size_t at = 0;
  while (current >= 0) {
    while (pending[at] == '/') at++;
    if (pending[at] == '\0') break;
    size_t len = strcspn(pending + at, "/");
    char name[NAME_MAX + 1], target[PATH_MAX];
    struct stat st;
    if (len > NAME_MAX) {
      pvx_fail(failure, ENAMETOOLONG, "walk", NULL);
      break;
    }
    memcpy(name, pending + at, len);
    name[len] = '\0';
    at += len;
    if (strcmp(name, ".") == 0) continue;
    int next = openat(current, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 || fstat(next, &st) != 0) {
      pvx_fail(failure, errno, "openat", NULL);
      if (next >= 0) close(next);
      break;
    }
    if (!S_ISLNK(st.st_mode)) {
      close(current);
      current = next;
      continue;
    }
    /* A symlink: its target is walked in place of this component. */
    int rc = read_symlink(next, target, sizeof target, &hops, failure);
    close(next);
    if (rc != 0 || splice_link(pending, sizeof pending, target, pending + at, failure) != 0) break;
    at = 0;
    if (target[0] == '/') {
      close(current);
      current = walk_from(root, failure);
    }
  }
  if (current < 0) return -1;
  struct stat st;
  if (failure->err == 0 && directory && (fstat(current, &st) != 0 || !S_ISDIR(st.st_mode)))
    pvx_fail(failure, ENOTDIR, "walk", NULL);
  if (failure->err == 0) return current;
  close(current);
  return -1;
}

int pvx_resolve(int root, int dirfd, const char *path, bool directory, pvx_failure *failure) {
  pvx_failure why = {0};
  int fd = pvx_features.openat2 ? resolve_openat2(root, dirfd, path, directory, &why)
                                : resolve_walk(root, dirfd, path, directory, &why);
  if (fd < 0) *failure = why;
  return fd;
}
