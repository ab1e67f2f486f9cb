/* Path resolution that never follows a magic link (/proc/<pid>/root, /proc/<pid>/fd/N, ...). */
#ifndef PVX_RESOLVE_H
#define PVX_RESOLVE_H

#include <stdbool.h>

/* Why an operation failed: errno value, the step that failed, and optionally a text replacing strerror's. */
typedef struct pvx_failure {
  int err;
  const char *step;
  const char *detail;
} pvx_failure;

/* Records a failure and returns -1. */
int pvx_fail(pvx_failure *failure, int err, const char *step, const char *detail);

/* What the running kernel offers, probed once by pvx_resolve_init; tests may turn features off (never on) to
 * exercise the fallbacks. */
typedef struct pvx_kernel_features {
  bool openat2; /* openat2(2) with RESOLVE_NO_MAGICLINKS: Linux 5.6 */
  bool pidfd;   /* pidfd_open(2): Linux 5.3 */
} pvx_kernel_features;

extern pvx_kernel_features pvx_probed_features, pvx_features;

/* The daemon's own procfs and its /proc/self/fd directory, opened before any thread joins another namespace:
 * connect() and reopen go through "<fd number>" relative to pvx_self_fd_dir, so the name the kernel follows is
 * always our own fd; pvx_open_root finds a thread's root through pvx_proc_dir. */
extern int pvx_proc_dir, pvx_self_fd_dir;

/* Probes the kernel and opens the directories above. Call once, on the JS thread, at module load. */
void pvx_resolve_init(void);

/* The calling thread's root directory as an O_PATH fd (after setns: the namespace's root). Paths are resolved
 * relative to it, never handed to the kernel as absolute paths (which an emulator such as qemu-user may rewrite). */
int pvx_open_root(pvx_failure *failure);

/* Opens `path` as an O_PATH|O_CLOEXEC fd, following ordinary symlinks but never a magic link: such a path fails
 * with ELOOP. An absolute path, and every absolute symlink on the way, starts at `root` (the calling thread's
 * root, from pvx_open_root); a relative one at dirfd. `directory`: the result must be a directory. Returns the fd,
 * or -1 with *failure set. */
int pvx_resolve(int root, int dirfd, const char *path, bool directory, pvx_failure *failure);

#endif
