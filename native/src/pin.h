/* A pinned namespace: one process's mount namespace held by fd, its liveness, and the worker thread that runs
 * every operation inside it. */
#ifndef PVX_PIN_H
#define PVX_PIN_H

#include <node_api.h>
#include <stdbool.h>
#include <sys/types.h>

#include "resolve.h"

typedef struct pvx_pin pvx_pin;
typedef struct pvx_job pvx_job;

/* The head of every queued operation (the operation's own struct embeds it first). */
struct pvx_job {
  pvx_job *next;
  /* Runs on the worker, inside the namespace; records a failure in `failure`. */
  void (*run)(pvx_pin *pin, pvx_job *job);
  /* Frees the job and whatever it owns (an fd it produced) when its result can no longer be delivered. */
  void (*dispose)(pvx_job *job);
  /* Refused with ESRCH (step "liveness") once the pinned process is gone. Cleanup (unlink) does not need it. */
  bool needs_alive;
  pvx_failure failure;
};

/* Pins pid's mount namespace (pid 0: the host, no namespace to join). `deliver` is called on the JS thread with
 * each finished job (env NULL: the environment is going away; dispose the job). Returns NULL with *failure set:
 * ESRCH (no such process), EPERM with "pid N is not in a container" (its mount namespace is ours), or the errno
 * of the step that failed. */
pvx_pin *pvx_pin_open(napi_env env, int pid, napi_threadsafe_function_call_js deliver, pvx_failure *failure,
                      char *detail, size_t detail_size);

int pvx_pin_pid(const pvx_pin *pin);

/* On the worker: the namespace's root directory (O_PATH), the start of every path resolved there. */
int pvx_pin_root(const pvx_pin *pin);

/* false once the pinned process has exited (a readable pidfd, or a /proc/<pid> directory whose process is
 * gone). Always true for the host. One system call; callable from any thread. */
bool pvx_pin_alive(const pvx_pin *pin);

/* Queues a job for the worker (JS thread). Returns false when the pin is closing. */
bool pvx_pin_submit(pvx_pin *pin, pvx_job *job);

/* Called on the JS thread when a delivered job has been settled: lets the event loop exit when nothing is queued. */
void pvx_pin_settled(pvx_pin *pin);

/* Lets the worker finish what is queued and end, and drops the caller's reference: the pin must not be used
 * afterwards (it frees itself once the worker and the thread-safe function are done too). JS thread, once. */
void pvx_pin_close(pvx_pin *pin);

/* On the worker: take uid/gid/groups as the thread's effective identity (the saved uid stays, so that
 * pvx_pin_restore_identity can switch back), and restore the thread's own afterwards. If restoring fails, the
 * worker refuses every later job. */
int pvx_pin_assume_identity(pvx_pin *pin, uid_t uid, gid_t gid, const gid_t *groups, size_t count,
                            pvx_failure *failure);
void pvx_pin_restore_identity(pvx_pin *pin);

#endif
