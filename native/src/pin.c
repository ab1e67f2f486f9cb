/*
 * Pinned namespaces.
 *
 * A pid is not an identity: once the process exits, the number can be handed to any other process, a host
 * process included (pid_max is often 32768). So a container end is pinned once and never looked up by pid again:
 *
 *   1. pidfd_open(pid): a handle on that very process (Linux >= 5.3);
 *   2. open /proc/<pid>/ns/mnt;
 *   3. the pidfd still says the process is alive, so pid still named it in step 2 and the fd is its namespace.
 *
 * Without pidfd_open (ENOSYS), /proc/<pid> is opened as a directory instead: that fd stays bound to the process
 * it was opened for, and lookups through it fail once the process is gone (same guarantee, Linux >= 2.6).
 * A namespace that is the daemon's own is refused: the pid is a host process (only `_pv_` ends are the host).
 *
 * Each pin has one worker thread for its whole life. It calls unshare(CLONE_FS) (its own root, cwd and umask:
 * Node's threads never see them change) and setns(CLONE_NEWNS) once, then serves queued jobs one at a time
 * with every signal blocked. Results go back to the JS thread through a thread-safe function. The pin frees
 * itself when both the worker and the thread-safe function are done with it (a reference count of two), so
 * neither closing order can touch freed memory, not even at process exit.
 */
#include "pin.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
/* 32-bit ARM's plain numbers take 16-bit ids; its *32 calls take full ones. */
#ifdef SYS_setresuid32
#define SYS_SETRESUID SYS_setresuid32
#define SYS_SETRESGID SYS_setresgid32
#define SYS_SETGROUPS SYS_setgroups32
#define SYS_GETGROUPS SYS_getgroups32
#else
#define SYS_SETRESUID SYS_setresuid
#define SYS_SETRESGID SYS_setresgid
#define SYS_SETGROUPS SYS_setgroups
#define SYS_GETGROUPS SYS_getgroups
#endif

#define THREAD_STACK_SIZE (256 * 1024)
#define UNCHANGED ((uid_t)-1)

struct pvx_pin {
  int pid;    /* 0: the host */
  int pidfd;  /* the pinned process, or -1 */
  int piddir; /* its /proc/<pid> directory where there is no pidfd, or -1 */
  int nsfd;   /* its mount namespace until the worker has joined it, or -1 */
  napi_env env;
  napi_threadsafe_function tsfn;
  unsigned in_flight; /* JS thread only: jobs submitted and not yet settled */

  pthread_mutex_t lock; /* guards what follows */
  pthread_cond_t wake;
  pvx_job *head, *tail;
  bool closing;
  bool tsfn_gone; /* finalized: never call it again */
  int refs;       /* the worker, the thread-safe function and the caller's handle */

  /* Worker only. */
  pvx_failure broken; /* why every job is refused (err 0: it is not) */
  int root;           /* the namespace's root directory, once joined */
  uid_t own_uid;
  gid_t own_gid;
  gid_t *own_groups;
  size_t own_group_count;
};

static void pin_free(pvx_pin *pin) {
  if (pin->pidfd >= 0) close(pin->pidfd);
  if (pin->piddir >= 0) close(pin->piddir);
  if (pin->nsfd >= 0) close(pin->nsfd);
  if (pin->root >= 0) close(pin->root);
  pthread_mutex_destroy(&pin->lock);
  pthread_cond_destroy(&pin->wake);
  free(pin->own_groups);
  free(pin);
}

/* Drops one reference (the worker's, the thread-safe function's or the handle's); the last one frees. Call with
 * the lock held. */
static void unref_and_unlock(pvx_pin *pin) {
  bool last = --pin->refs == 0;
  pthread_mutex_unlock(&pin->lock);
  if (last) pin_free(pin);
}

int pvx_pin_pid(const pvx_pin *pin) { return pin->pid; }

int pvx_pin_root(const pvx_pin *pin) { return pin->root; }

bool pvx_pin_alive(const pvx_pin *pin) {
  if (pin->pidfd >= 0) {
    struct pollfd event = {.fd = pin->pidfd, .events = POLLIN};
    int ready;
    do ready = poll(&event, 1, 0);
    while (ready < 0 && errno == EINTR);
    /* Readable: the process has exited. An error counts as gone: never act on a pid we cannot vouch for. */
    return ready == 0;
  }
  if (pin->piddir >= 0) return faccessat(pin->piddir, "stat", F_OK, 0) == 0;
  return true;
}

/* ---- Pinning (JS thread) ---- */

static int gone_or(int err) { return err == ENOENT || err == ESRCH ? ESRCH : err; }

static int pin_process(pvx_pin *pin, pvx_failure *failure, char *detail, size_t detail_size) {
  char path[64];
  if (pvx_features.pidfd) {
    pin->pidfd = (int)syscall(SYS_pidfd_open, pin->pid, 0);
    if (pin->pidfd < 0) return pvx_fail(failure, gone_or(errno), "pidfd_open", NULL);
    snprintf(path, sizeof path, "/proc/%d/ns/mnt", pin->pid);
    pin->nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (pin->nsfd < 0) return pvx_fail(failure, gone_or(errno), "open /proc/<pid>/ns/mnt", NULL);
    /* Still alive after the open: the pid named this process all along, so the fd is its namespace. */
    if (!pvx_pin_alive(pin)) return pvx_fail(failure, ESRCH, "pidfd", NULL);
  } else {
    snprintf(path, sizeof path, "/proc/%d", pin->pid);
    pin->piddir = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (pin->piddir < 0) return pvx_fail(failure, gone_or(errno), "open /proc/<pid>", NULL);
    pin->nsfd = openat(pin->piddir, "ns/mnt", O_RDONLY | O_CLOEXEC);
    if (pin->nsfd < 0) return pvx_fail(failure, gone_or(errno), "open /proc/<pid>/ns/mnt", NULL);
  }
  struct stat theirs, ours;
  if (fstat(pin->nsfd, &theirs) != 0) return pvx_fail(failure, errno, "fstat", NULL);
  if (stat("/proc/self/ns/mnt", &ours) != 0) return pvx_fail(failure, errno, "stat /proc/self/ns/mnt", NULL);
  if (theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino) {
    snprintf(detail, detail_size, "pid %d is not in a container", pin->pid);
    return pvx_fail(failure, EPERM, "pin", detail);
  }
  return 0;
}

static void tsfn_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  pvx_pin *pin = data;
  pthread_mutex_lock(&pin->lock);
  pin->tsfn_gone = true;
  pin->closing = true;
  pthread_cond_signal(&pin->wake);
  unref_and_unlock(pin);
}

static void *worker_main(void *arg);

pvx_pin *pvx_pin_open(napi_env env, int pid, napi_threadsafe_function_call_js deliver, pvx_failure *failure,
                      char *detail, size_t detail_size) {
  pvx_pin *pin = calloc(1, sizeof *pin);
  if (pin == NULL) {
    pvx_fail(failure, ENOMEM, "pin", NULL);
    return NULL;
  }
  pin->pid = pid;
  pin->pidfd = pin->piddir = pin->nsfd = pin->root = -1;
  pin->env = env;
  pthread_mutex_init(&pin->lock, NULL);
  pthread_cond_init(&pin->wake, NULL);
  if (pid != 0 && pin_process(pin, failure, detail, detail_size) != 0) {
    pin_free(pin);
    return NULL;
  }
  napi_value name;
  napi_create_string_utf8(env, "pvx-ns", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, pin, tsfn_finalize, pin, deliver, &pin->tsfn) !=
      napi_ok) {
    pin_free(pin);
    pvx_fail(failure, EAGAIN, "napi_create_threadsafe_function", NULL);
    return NULL;
  }
  /* An idle pin does not keep the process alive; pvx_pin_submit refs it while jobs are queued. */
  napi_unref_threadsafe_function(env, pin->tsfn);
  /* The handle's reference matters when the environment shuts down: the thread-safe function is finalized
   * and the worker ends before the handle's finalizer runs, which must not find the pin freed. */
  pin->refs = 3;

  pthread_attr_t attr;
  pthread_t thread;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* Born with every signal blocked: no handler ever runs with another root or identity. */
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int rc = pthread_create(&thread, &attr, worker_main, pin);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    /* No worker: drop its reference and let the thread-safe function's finalizer free the pin. */
    pthread_mutex_lock(&pin->lock);
    pin->refs = 1;
    pthread_mutex_unlock(&pin->lock);
    napi_release_threadsafe_function(pin->tsfn, napi_tsfn_release);
    pvx_fail(failure, rc, "pthread_create", NULL);
    return NULL;
  }
  return pin;
}

bool pvx_pin_submit(pvx_pin *pin, pvx_job *job) {
  pthread_mutex_lock(&pin->lock);
  bool open = !pin->closing;
  if (open) {
    job->next = NULL;
    if (pin->tail) pin->tail->next = job;
    else pin->head = job;
    pin->tail = job;
    pthread_cond_signal(&pin->wake);
  }
  pthread_mutex_unlock(&pin->lock);
  if (open && pin->in_flight++ == 0) napi_ref_threadsafe_function(pin->env, pin->tsfn);
  return open;
}

void pvx_pin_settled(pvx_pin *pin) {
  if (--pin->in_flight == 0) napi_unref_threadsafe_function(pin->env, pin->tsfn);
}

void pvx_pin_close(pvx_pin *pin) {
  pthread_mutex_lock(&pin->lock);
  pin->closing = true;
  pthread_cond_signal(&pin->wake);
  unref_and_unlock(pin);
}

/* ---- The worker ---- */

/* Its own fs state, the namespace (once), and the identity it returns to after each job with credentials. */
static void enter(pvx_pin *pin) {
  if (unshare(CLONE_FS) != 0) {
    pvx_fail(&pin->broken, errno, "unshare", NULL);
    return;
  }
  /* Our own umask now: modes are exactly what each job asks for. */
  umask(0);
  if (pin->nsfd >= 0) {
    int rc = setns(pin->nsfd, CLONE_NEWNS);
    int err = errno;
    /* The thread itself now holds the namespace. */
    close(pin->nsfd);
    pin->nsfd = -1;
    if (rc != 0) {
      pvx_fail(&pin->broken, err, "setns", NULL);
      return;
    }
  }
  if ((pin->root = pvx_open_root(&pin->broken)) < 0) return;
  pin->own_uid = geteuid();
  pin->own_gid = getegid();
  long count = syscall(SYS_GETGROUPS, 0, NULL);
  pin->own_groups = calloc(count > 0 ? (size_t)count : 1, sizeof *pin->own_groups);
  if (count < 0 || pin->own_groups == NULL) {
    pvx_fail(&pin->broken, count < 0 ? errno : ENOMEM, "getgroups", NULL);
    return;
  }
  count = syscall(SYS_GETGROUPS, count, pin->own_groups);
  if (count < 0) pvx_fail(&pin->broken, errno, "getgroups", NULL);
  else pin->own_group_count = (size_t)count;
}

static void deliver(pvx_pin *pin, pvx_job *job) {
  pthread_mutex_lock(&pin->lock);
  bool sent = !pin->tsfn_gone && napi_call_threadsafe_function(pin->tsfn, job, napi_tsfn_nonblocking) == napi_ok;
  pthread_mutex_unlock(&pin->lock);
  if (!sent) job->dispose(job);
}

static void *worker_main(void *arg) {
  pvx_pin *pin = arg;
  /* Named, so that /proc/<pid>/task/<tid>/comm tells these threads apart from Node's. */
  prctl(PR_SET_NAME, "pvx-ns");
  enter(pin);
  for (;;) {
    pthread_mutex_lock(&pin->lock);
    while (pin->head == NULL && !pin->closing) pthread_cond_wait(&pin->wake, &pin->lock);
    pvx_job *job = pin->head;
    if (job != NULL) {
      pin->head = job->next;
      if (pin->head == NULL) pin->tail = NULL;
    }
    pthread_mutex_unlock(&pin->lock);
    if (job == NULL) break;
    if (pin->broken.err != 0) job->failure = pin->broken;
    else if (job->needs_alive && !pvx_pin_alive(pin))
      pvx_fail(&job->failure, ESRCH, "liveness", "the pinned process is gone");
    else job->run(pin, job);
    /* Hold no other directory of the namespace busy between jobs. */
    if (pin->root >= 0 && fchdir(pin->root) != 0 && pin->broken.err == 0)
      pvx_fail(&pin->broken, errno, "fchdir /", NULL);
    deliver(pin, job);
  }
  /* Closed before the thread ends: once it is gone, so is its hold on the namespace's root. */
  if (pin->root >= 0) close(pin->root);
  pin->root = -1;
  pthread_mutex_lock(&pin->lock);
  if (!pin->tsfn_gone) napi_release_threadsafe_function(pin->tsfn, napi_tsfn_release);
  unref_and_unlock(pin);
  return NULL;
}

/* ---- Credentials (worker) ---- */

int pvx_pin_assume_identity(pvx_pin *pin, uid_t uid, gid_t gid, const gid_t *groups, size_t count,
                            pvx_failure *failure) {
  /* Raw system calls: glibc's wrappers would switch every thread of the process. Groups and gid first, while
   * we still may; the effective uid last. Real and saved ids stay, so the way back stays open. */
  const char *step = NULL;
  if (syscall(SYS_SETGROUPS, count, groups) != 0) step = "setgroups";
  else if (syscall(SYS_SETRESGID, UNCHANGED, gid, UNCHANGED) != 0) step = "setresgid";
  else if (syscall(SYS_SETRESUID, UNCHANGED, uid, UNCHANGED) != 0) step = "setresuid";
  if (step == NULL) return 0;
  int err = errno;
  pvx_pin_restore_identity(pin);
  return pvx_fail(failure, err, step, NULL);
}

void pvx_pin_restore_identity(pvx_pin *pin) {
  if (syscall(SYS_SETRESUID, UNCHANGED, pin->own_uid, UNCHANGED) != 0 ||
      syscall(SYS_SETRESGID, UNCHANGED, pin->own_gid, UNCHANGED) != 0 ||
      syscall(SYS_SETGROUPS, pin->own_group_count, pin->own_groups) != 0)
    pvx_fail(&pin->broken, errno, "restore identity", "the worker could not return to its own identity");
}
