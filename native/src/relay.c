/*
 * Byte relays served in the addon (wrapped by native/byte-relay.ts): the two sockets of a connection whose
 * bytes need no look (a unix link) relayed, with the fds riding on them, without entering JavaScript.
 *
 * Exports:
 *   relayTally() -> tally          counters shared by the relays of one link
 *   tallyRead(tally) -> [bytes to provider, bytes to consumer, fds to provider, fds to consumer]
 *   tallyRunning(tally) -> the relays it holds (tallyRelay) that have not ended
 *   relayStart(consumerFd, providerFd, tally, idleHalfOpenMs, onEnd) -> relay
 *                                  Takes both fds (non-blocking stream sockets) unless it throws: the relay
 *                                  closes them when it ends. onEnd(kind, detail) runs once, when the relay
 *                                  ended by itself: RELAY_CLOSED both sides closed; RELAY_FAILED a side failed
 *                                  (detail says which and how); RELAY_REAPED half-open and idle too long.
 *   relayStop(relay)               ends it at once, both fds closed; no onEnd follows. Idempotent.
 *   tallyRelay(tally, consumerFd, providerFd, idleHalfOpenMs, onTrouble)
 *                                  As relayStart, for a relay the tally holds instead of a JS handle: it is counted
 *                                  as running in tallyRead until it ends, and onTrouble(kind, detail) runs only
 *                                  for an end that is not RELAY_CLOSED. Nothing enters JavaScript per connection.
 *   tallyEndAll(tally)             ends every running relay the tally holds, as relayStop does.
 *
 * What it does is what mediators/relay.ts does for a connection without filters. Each direction is read
 * (READ_SIZE a recvmsg, fds with their first byte) and sent on at once; what the receiver does not take goes
 * to its outbox, and its sender is not read until the outbox is empty (backpressure stays in the kernel's
 * buffers). The end of a direction goes on as shutdown(SHUT_WR) once its outbox is empty. A side that fails
 * ends the connection (one whose peer reads no more, EPIPE, only once what that peer sent went on), but the
 * survivor still gets what was on its way to it, then the end of the stream,
 * and what it sends meanwhile is read and dropped, for at most LINGER_MS (the wind-down). A connection with
 * one direction ended and nothing read for idleHalfOpenMs is reaped.
 *
 * The relays of an environment share one epoll set of their own, watched by one uv_poll on the loop: a
 * socket costs an epoll_ctl when what it waits for changes (not while bytes flow). A socket is in the set
 * only while there is something to wait for on it: a hung-up socket that is not read (its receiver is full)
 * cannot spin the loop with EPOLLHUP. Ends are reported in one callback scope after each batch of events.
 *
 * Lifetime: a relay is freed once it has ended, its end was reported (or dropped) and its JS handle was
 * finalized (a relay the tally holds has none); a tally once its JS handle and every relay counting into it are
 * gone. When the environment
 * shuts down, an async cleanup hook ends every relay and closes the engine's handles.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "addon.h"
#include "cmsg.h"
#include "receive.h"

#define READ_SIZE (64 * 1024)
#define READ_BUDGET 16 /* reads of one socket per event, before the others are served */
#define EVENTS_PER_WAIT 64
#define LINGER_MS 1000 /* as mediators/relay.ts */
#define DETAIL_MAX 160

/* Sides, numbered as the tally counts what went to them. */
enum { PROVIDER = 0, CONSUMER = 1 };
enum { RELAY_CLOSED = 0, RELAY_FAILED = 1, RELAY_REAPED = 2 };
/* Tally slots, by the side the bytes went to. */
enum { BYTES_TO = 0, FDS_TO = 2 };

typedef struct engine engine;
typedef struct pvx_relay pvx_relay;

typedef struct {
  double counts[4];
  unsigned refs;    /* its JS handle and every relay counting into it */
  unsigned running; /* relays it holds (tallyRelay) that have not ended */
} tally;

typedef struct {
  pvx_relay *relay;
  int fd;              /* -1 once closed */
  uint32_t registered; /* the events it is in the epoll set for; 0: not in it */
  bool read_ended;     /* its end of stream was read */
  bool write_shut;     /* shut down for writing */
  int write_error;     /* a send to it failed (EPIPE) while its input was still to be read: its failure after that */
  /* What the other side sent that this one did not take yet, and the fds riding with its first byte. */
  char *outbox;
  size_t outbox_length, outbox_offset;
  int *outbox_fds;
  size_t outbox_fd_count;
} side;

struct pvx_relay {
  engine *engine; /* NULL once the environment shut down */
  side sides[2];
  tally *tally;
  napi_ref on_end; /* NULL once stopped or reported */
  uint64_t idle_half_open_ms;
  uint64_t last_activity; /* loop time of the last read */
  uint64_t linger_until;  /* winding down: when the survivor is closed regardless */
  int survivor;           /* winding down: the side still served; -1 otherwise */
  int end_kind;
  bool ended;
  bool queued; /* in the engine's list of ends to report */
  bool held;   /* by its tally (tallyRelay), with no JS handle */
  bool external_released;
  char detail[DETAIL_MAX];
  pvx_relay *prev, *next; /* the engine's relays */
  pvx_relay *next_ended;
};

struct engine {
  napi_env env;
  uv_loop_t *loop;
  int epfd;
  uv_poll_t poll;
  uv_timer_t timer;
  uint64_t timer_due; /* 0: not armed */
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup_hook;
  pvx_relay *relays;
  size_t running; /* relays not ended: the poll keeps the loop alive while there are some */
  pvx_relay *ended_head, *ended_tail;
  int open_handles;
  bool serving;       /* in a batch: ends are reported after it */
  bool shutting_down; /* the environment's cleanup: nothing is queued or reported any more */
};

/* This environment's engine (each runs on a thread of its own), made with its first relay. */
static _Thread_local engine *current;

static const napi_type_tag tally_tag = {0x7076785f74616c6cULL, 0x72656c61792e6301ULL};
static const napi_type_tag relay_tag = {0x7076785f72656c61ULL, 0x72656c61792e6302ULL};

static int other(int s) { return 1 - s; }

static bool has_outbox(const side *side) { return side->outbox != NULL; }

static void tally_release(tally *tally) {
  if (--tally->refs == 0) free(tally);
}

static void relay_free_if_done(pvx_relay *r) {
  if (!r->ended || r->queued || !r->external_released) return;
  engine *e = r->engine;
  if (e != NULL) {
    if (r->prev != NULL)
      r->prev->next = r->next;
    else
      e->relays = r->next;
    if (r->next != NULL) r->next->prev = r->prev;
  }
  tally_release(r->tally);
  free(r);
}

/* ---- ending ---- */

static void drop_outbox(side *side) {
  free(side->outbox);
  side->outbox = NULL;
  side->outbox_length = side->outbox_offset = 0;
  pvx_close_fds(side->outbox_fds, side->outbox_fd_count);
  free(side->outbox_fds);
  side->outbox_fds = NULL;
  side->outbox_fd_count = 0;
}

/* Out of the epoll set first: another process may hold the same file (a child between fork and exec), and
 * the set would report it after our close. */
static void close_side(pvx_relay *r, int s) {
  side *side = &r->sides[s];
  drop_outbox(side);
  if (side->fd < 0) return;
  if (side->registered != 0) epoll_ctl(r->engine->epfd, EPOLL_CTL_DEL, side->fd, NULL);
  side->registered = 0;
  close(side->fd);
  side->fd = -1;
}

static void schedule(engine *e, uint64_t due);

static void end_relay(pvx_relay *r, int kind) {
  if (r->ended) return;
  engine *e = r->engine;
  r->ended = true;
  r->end_kind = kind;
  close_side(r, CONSUMER);
  close_side(r, PROVIDER);
  if (--e->running == 0) uv_unref((uv_handle_t *)&e->poll);
  if (r->held) {
    r->tally->running--;
    /* Its tally hears only of trouble; it is freed once its batch is done (see report_ended). */
    if (kind == RELAY_CLOSED && r->on_end != NULL) {
      napi_delete_reference(e->env, r->on_end);
      r->on_end = NULL;
    }
  } else if (r->on_end == NULL) {
    return;
  }
  if (e->shutting_down) return;
  r->queued = true;
  r->next_ended = NULL;
  if (e->ended_tail != NULL)
    e->ended_tail->next_ended = r;
  else
    e->ended_head = r;
  e->ended_tail = r;
  if (!e->serving) schedule(e, uv_now(e->loop)); /* reported from the timer, never inside a call from JS */
}

/* Calls onEnd of the relays that ended, in one callback scope (its microtasks run once, after them all). */
static void report_ended(engine *e) {
  pvx_relay *batch = e->ended_head;
  if (batch == NULL) return;
  e->ended_head = e->ended_tail = NULL;
  bool calls = false; /* relays a tally holds often end with nothing to say: then JavaScript is not entered */
  for (pvx_relay *r = batch; r != NULL && !calls; r = r->next_ended) calls = r->on_end != NULL;
  napi_env env = e->env;
  napi_handle_scope scope;
  napi_callback_scope callback_scope;
  bool opened = calls && napi_open_handle_scope(env, &scope) == napi_ok;
  bool in_scope = opened && napi_open_callback_scope(env, NULL, e->async_context, &callback_scope) == napi_ok;
  for (pvx_relay *r = batch; in_scope && r != NULL; r = r->next_ended) {
    if (r->on_end == NULL) continue; /* stopped after it ended */
    napi_value callback, receiver, argv[2];
    napi_get_reference_value(env, r->on_end, &callback);
    napi_delete_reference(env, r->on_end);
    r->on_end = NULL;
    napi_get_undefined(env, &receiver);
    napi_create_int32(env, r->end_kind, &argv[0]);
    if (r->detail[0] != '\0')
      napi_create_string_utf8(env, r->detail, NAPI_AUTO_LENGTH, &argv[1]);
    else
      napi_get_null(env, &argv[1]);
    if (callback != NULL) pvx_report_thrown(env, napi_call_function(env, receiver, callback, 2, argv, NULL));
  }
  if (in_scope) napi_close_callback_scope(env, callback_scope); /* runs the microtasks the callbacks queued */
  if (opened) napi_close_handle_scope(env, scope);
  for (pvx_relay *r = batch, *next; r != NULL; r = next) {
    next = r->next_ended;
    r->queued = false;
    relay_free_if_done(r);
  }
}

/* The first failure names the side and what failed; the relay then winds down, or ends if it already was. */
static void side_failed(pvx_relay *r, int s, const char *what);

static void fail_errno(pvx_relay *r, int s, int err, const char *op) {
  char what[DETAIL_MAX - 16]; /* room for the side's name */
  const char *name = strerrorname_np(err);
  snprintf(what, sizeof what, "%s: %s (%s)", op, name ? name : "E?", strerror(err));
  side_failed(r, s, what);
}

/* ---- interest ---- */

static uint32_t wanted(const pvx_relay *r, int s) {
  const side *me = &r->sides[s];
  if (r->ended || me->fd < 0) return 0;
  uint32_t events = has_outbox(me) ? EPOLLOUT : 0;
  const side *to = &r->sides[other(s)];
  bool read = !me->read_ended && (r->survivor == s || (r->survivor < 0 && !has_outbox(to) && to->write_error == 0));
  return read ? events | EPOLLIN : events;
}

static void update_interest(pvx_relay *r, int s) {
  side *me = &r->sides[s];
  uint32_t events = wanted(r, s);
  if (events == me->registered) return;
  struct epoll_event event = {.events = events, .data.ptr = me};
  int op = events == 0 ? EPOLL_CTL_DEL : me->registered == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (epoll_ctl(r->engine->epfd, op, me->fd, &event) != 0) {
    int err = errno;
    me->registered = 0;
    snprintf(r->detail, sizeof r->detail, "%s epoll_ctl: %s", s == CONSUMER ? "consumer" : "provider",
             strerror(err));
    end_relay(r, RELAY_FAILED);
    return;
  }
  me->registered = events;
}

static void update_both(pvx_relay *r) {
  update_interest(r, CONSUMER);
  update_interest(r, PROVIDER);
}

/* ---- the state of the connection ---- */

static void shut_write(side *side) {
  if (side->write_shut) return;
  side->write_shut = true;
  shutdown(side->fd, SHUT_WR); /* ENOTCONN: its peer is gone, which its next read says anyway */
}

static void check_done(pvx_relay *r) {
  if (r->ended) return;
  if (r->survivor >= 0) {
    const side *survivor = &r->sides[r->survivor];
    if (survivor->read_ended && survivor->write_shut) end_relay(r, RELAY_FAILED);
  } else if (r->sides[CONSUMER].write_shut && r->sides[PROVIDER].write_shut && r->sides[CONSUMER].read_ended &&
             r->sides[PROVIDER].read_ended) {
    end_relay(r, RELAY_CLOSED);
  }
}

/* One direction ended, or both, or a wind-down began: when the relay must look again, whatever happens. */
static uint64_t deadline(const pvx_relay *r) {
  if (r->ended) return 0;
  if (r->survivor >= 0) return r->linger_until;
  if (r->sides[CONSUMER].read_ended || r->sides[PROVIDER].read_ended)
    return r->last_activity + r->idle_half_open_ms;
  return 0;
}

static void side_failed(pvx_relay *r, int s, const char *what) {
  if (r->ended) return;
  if (r->detail[0] == '\0')
    snprintf(r->detail, sizeof r->detail, "%s %s", s == CONSUMER ? "consumer" : "provider", what);
  if (r->survivor >= 0) {
    end_relay(r, RELAY_FAILED);
    return;
  }
  close_side(r, s);
  int t = other(s);
  r->survivor = t;
  if (!has_outbox(&r->sides[t])) shut_write(&r->sides[t]);
  r->linger_until = uv_now(r->engine->loop) + LINGER_MS;
  schedule(r->engine, r->linger_until);
  update_interest(r, t);
  check_done(r);
}

static void read_ended(pvx_relay *r, int s) {
  r->sides[s].read_ended = true;
  if (r->sides[s].write_error != 0) { /* all it sent went on: now its failed write ends the connection */
    fail_errno(r, s, r->sides[s].write_error, "sendmsg");
    return;
  }
  side *to = &r->sides[other(s)];
  if (r->survivor < 0 && !has_outbox(to)) shut_write(to);
  check_done(r);
  uint64_t due = deadline(r);
  if (due != 0) schedule(r->engine, due);
}

/* ---- moving bytes ---- */

/* A send to side t failed. EPIPE says that its peer reads no more, not that it sent nothing more: while its input
 * has not ended, that is still read and sent on (its sender is not read meanwhile: nothing can go to t), and t
 * fails after its end. Anything else fails t at once, and so does a second EPIPE (nothing can go anywhere). */
static void write_failed(pvx_relay *r, int t, int err) {
  side *to = &r->sides[t];
  if (err != EPIPE || to->read_ended || r->survivor >= 0 || r->sides[other(t)].write_error != 0) {
    fail_errno(r, t, err, "sendmsg");
    return;
  }
  to->write_error = err;
  drop_outbox(to);
  update_both(r);
}

static ssize_t send_chunk(int fd, const char *data, size_t length, const int *fds, size_t fd_count) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * PVX_SCM_MAX_FD)];
  } control;
  struct iovec iov = {.iov_base = (void *)data, .iov_len = length};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd_count > 0) {
    msg.msg_control = control.buf;
    msg.msg_controllen = pvx_cmsg_put_fds(control.buf, sizeof control.buf, fds, fd_count);
  }
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n;
}

/* Sends what was read from the other side on to side t; what it does not take goes to its outbox. False
 * when the sender must not be read on (an outbox, or t failed). */
static bool forward(pvx_relay *r, int t, const pvx_received *received) {
  side *to = &r->sides[t];
  size_t length = (size_t)received->bytes;
  ssize_t sent = send_chunk(to->fd, received->data, length, received->fds, received->fd_count);
  if (sent < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      int err = errno;
      pvx_close_fds(received->fds, received->fd_count);
      write_failed(r, t, err);
      return false;
    }
    sent = 0;
  }
  bool keep_fds = sent == 0 && received->fd_count > 0;
  if (!keep_fds) pvx_close_fds(received->fds, received->fd_count); /* sent: the receiver has its own copies now */
  if ((size_t)sent == length) return true;
  size_t rest = length - (size_t)sent;
  to->outbox = malloc(rest);
  to->outbox_fds = keep_fds ? malloc(received->fd_count * sizeof(int)) : NULL;
  if (to->outbox == NULL || (keep_fds && to->outbox_fds == NULL)) {
    if (keep_fds) pvx_close_fds(received->fds, received->fd_count);
    drop_outbox(to);
    fail_errno(r, t, ENOMEM, "relay outbox");
    return false;
  }
  memcpy(to->outbox, received->data + sent, rest);
  to->outbox_length = rest;
  if (keep_fds) {
    memcpy(to->outbox_fds, received->fds, received->fd_count * sizeof(int));
    to->outbox_fd_count = received->fd_count;
  }
  return false;
}

static void serve_readable(pvx_relay *r, int s) {
  side *from = &r->sides[s];
  int t = other(s);
  for (int reads = 0; reads < READ_BUDGET && (wanted(r, s) & EPOLLIN); reads++) {
    pvx_received received;
    int status = pvx_receive(from->fd, READ_SIZE, &received);
    if (status == PVX_WOULD_BLOCK) break;
    if (status == PVX_CTRUNC) {
      side_failed(r, s, "recvmsg: control data truncated (MSG_CTRUNC): fds were lost");
      return;
    }
    if (status != PVX_RECEIVED) {
      fail_errno(r, s, status, "recvmsg");
      return;
    }
    r->last_activity = uv_now(r->engine->loop);
    if (received.bytes == 0) {
      read_ended(r, s);
      break;
    }
    if (r->survivor == s) {
      pvx_close_fds(received.fds, received.fd_count); /* winding down: nothing goes on */
    } else {
      r->tally->counts[BYTES_TO + t] += (double)received.bytes;
      r->tally->counts[FDS_TO + t] += (double)received.fd_count;
      if (!forward(r, t, &received)) break;
    }
    if (received.bytes < READ_SIZE) break; /* the socket is empty: skip the recvmsg that says EAGAIN */
  }
  update_both(r);
}

static void serve_writable(pvx_relay *r, int t) {
  side *to = &r->sides[t];
  ssize_t sent = send_chunk(to->fd, to->outbox + to->outbox_offset, to->outbox_length - to->outbox_offset,
                            to->outbox_fds, to->outbox_fd_count);
  if (sent < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) write_failed(r, t, errno);
    return;
  }
  if (to->outbox_fd_count > 0) { /* they went with the first byte: the receiver has its own copies now */
    pvx_close_fds(to->outbox_fds, to->outbox_fd_count);
    free(to->outbox_fds);
    to->outbox_fds = NULL;
    to->outbox_fd_count = 0;
  }
  to->outbox_offset += (size_t)sent;
  if (to->outbox_offset < to->outbox_length) return;
  drop_outbox(to);
  /* The end of the stream held back behind the outbox goes on now. */
  if (r->survivor == t || r->sides[other(t)].read_ended) shut_write(to);
  check_done(r);
  update_both(r);
}

static void on_events(uv_poll_t *handle, int status, int events) {
  (void)status;
  (void)events;
  engine *e = handle->data;
  struct epoll_event ready[EVENTS_PER_WAIT];
  int count;
  do count = epoll_wait(e->epfd, ready, EVENTS_PER_WAIT, 0);
  while (count < 0 && errno == EINTR);
  e->serving = true;
  for (int i = 0; i < count; i++) {
    side *side = ready[i].data.ptr;
    pvx_relay *r = side->relay;
    int s = (int)(side - r->sides);
    uint32_t got = ready[i].events;
    /* Reads first: what a peer sent before it went away goes on before a failed write ends the relay. */
    if ((got & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (wanted(r, s) & EPOLLIN)) serve_readable(r, s);
    if ((got & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && (wanted(r, s) & EPOLLOUT)) serve_writable(r, s);
  }
  e->serving = false;
  report_ended(e);
}

/* ---- timer: wind-downs and idle half-open connections ---- */

static void on_timer(uv_timer_t *timer) {
  engine *e = timer->data;
  e->timer_due = 0;
  uint64_t now = uv_now(e->loop), next = 0;
  e->serving = true;
  for (pvx_relay *r = e->relays; r != NULL; r = r->next) {
    uint64_t due = deadline(r);
    if (due == 0) continue;
    if (due > now) {
      if (next == 0 || due < next) next = due;
    } else if (r->survivor >= 0) {
      end_relay(r, RELAY_FAILED);
    } else {
      snprintf(r->detail, sizeof r->detail, "half-open and idle for %llu ms",
               (unsigned long long)(now - r->last_activity));
      end_relay(r, RELAY_REAPED);
    }
  }
  e->serving = false;
  report_ended(e);
  if (next != 0) schedule(e, next);
}

static void schedule(engine *e, uint64_t due) {
  if (e->timer_due != 0 && e->timer_due <= due) return;
  e->timer_due = due;
  uint64_t now = uv_now(e->loop);
  uv_timer_start(&e->timer, on_timer, due > now ? due - now : 0, 0);
}

/* ---- the engine ---- */

static void on_engine_handle_closed(uv_handle_t *handle) {
  engine *e = handle->data;
  if (--e->open_handles > 0) return;
  close(e->epfd);
  napi_async_destroy(e->env, e->async_context);
  napi_remove_async_cleanup_hook(e->cleanup_hook); /* last: may release the environment */
  free(e);
}

static void on_engine_cleanup(napi_async_cleanup_hook_handle hook, void *data) {
  (void)hook;
  engine *e = data;
  if (current == e) current = NULL;
  e->serving = true;
  e->shutting_down = true;
  for (pvx_relay *r = e->relays, *next; r != NULL; r = next) {
    next = r->next;
    if (r->on_end != NULL) napi_delete_reference(e->env, r->on_end);
    r->on_end = NULL;
    end_relay(r, RELAY_CLOSED);
    r->queued = false;
    r->engine = NULL; /* its finalizer frees it */
    r->prev = r->next = NULL;
    if (r->external_released) {
      tally_release(r->tally);
      free(r);
    }
  }
  e->relays = NULL;
  uv_close((uv_handle_t *)&e->poll, on_engine_handle_closed);
  uv_close((uv_handle_t *)&e->timer, on_engine_handle_closed);
}

static engine *engine_get(napi_env env) {
  if (current != NULL) return current;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  engine *e = calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  e->env = env;
  e->loop = loop;
  e->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (e->epfd < 0 || uv_poll_init(loop, &e->poll, e->epfd) != 0) {
    if (e->epfd >= 0) close(e->epfd);
    free(e);
    return NULL;
  }
  e->poll.data = e;
  uv_timer_init(loop, &e->timer);
  e->timer.data = e;
  uv_unref((uv_handle_t *)&e->poll); /* referenced only while relays run */
  uv_unref((uv_handle_t *)&e->timer);
  e->open_handles = 2;
  napi_value resource, name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "PvxByteRelay", NAPI_AUTO_LENGTH, &name);
  if (napi_async_init(env, resource, name, &e->async_context) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_engine_cleanup, e, &e->cleanup_hook) != napi_ok ||
      uv_poll_start(&e->poll, UV_READABLE, on_events) != 0) {
    e->cleanup_hook = NULL;
    uv_close((uv_handle_t *)&e->poll, NULL);
    uv_close((uv_handle_t *)&e->timer, NULL);
    close(e->epfd);
    return NULL; /* e leaks with its handles' memory: only when the environment is broken anyway */
  }
  current = e;
  return e;
}

/* ---- JS ---- */

static void on_tally_finalized(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  tally_release(data);
}

static napi_value js_relay_tally(napi_env env, napi_callback_info info) {
  (void)info;
  tally *t = calloc(1, sizeof *t);
  napi_value external;
  if (t == NULL) {
    pvx_throw_errno(env, ENOMEM, "relayTally", NULL);
    return NULL;
  }
  t->refs = 1;
  if (napi_create_external(env, t, on_tally_finalized, NULL, &external) != napi_ok) {
    free(t);
    return NULL;
  }
  if (napi_type_tag_object(env, external, &tally_tag) != napi_ok) return NULL;
  return external;
}

static napi_value js_tally_read(napi_env env, napi_callback_info info) {
  napi_value argv[1], result, value;
  if (!pvx_get_args(env, info, 1, argv)) return NULL;
  tally *t = pvx_get_tagged(env, argv[0], &tally_tag, "not a relay tally");
  if (t == NULL || napi_create_array_with_length(env, 4, &result) != napi_ok) return NULL;
  for (uint32_t i = 0; i < 4; i++)
    if (napi_create_double(env, t->counts[i], &value) != napi_ok || napi_set_element(env, result, i, value) != napi_ok)
      return NULL;
  return result;
}

/* Asked on every accept of a link (its connection cap): one number, no array. */
static napi_value js_tally_running(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  if (!pvx_get_args(env, info, 1, argv)) return NULL;
  tally *t = pvx_get_tagged(env, argv[0], &tally_tag, "not a relay tally");
  if (t == NULL || napi_create_uint32(env, t->running, &result) != napi_ok) return NULL;
  return result;
}

static void on_relay_finalized(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  pvx_relay *r = data;
  r->external_released = true;
  if (r->engine == NULL) { /* never started, or the environment shut down: nothing else holds it */
    if (r->tally != NULL) tally_release(r->tally);
    free(r);
    return;
  }
  relay_free_if_done(r);
}

/* r, its callback referenced, takes the fds and starts relaying them. */
static void relay_begin(engine *e, pvx_relay *r, const int *fds, tally *t, int64_t idle_ms) {
  r->engine = e;
  r->tally = t;
  t->refs++;
  r->survivor = -1;
  r->idle_half_open_ms = (uint64_t)idle_ms;
  r->last_activity = uv_now(e->loop);
  for (int s = 0; s < 2; s++) {
    r->sides[s].relay = r;
    r->sides[s].fd = fds[s];
  }
  r->next = e->relays;
  if (e->relays != NULL) e->relays->prev = r;
  e->relays = r;
  if (e->running++ == 0) uv_ref((uv_handle_t *)&e->poll);
  update_both(r);
  /* A consumer often speaks first and has by now (a request, a handshake): read it at once, not a turn later. */
  serve_readable(r, CONSUMER);
}

/* relayStart(consumerFd, providerFd, tally, idleHalfOpenMs, onEnd) -> relay, and, `held` by the tally with no JS
 * handle, tallyRelay(..., onTrouble). */
static napi_value start_relay(napi_env env, napi_callback_info info, bool held) {
  napi_value argv[5], result;
  int fds[2];
  int64_t idle_ms;
  napi_valuetype type;
  if (!pvx_get_args(env, info, 5, argv) || !pvx_get_fd(env, argv[0], &fds[CONSUMER]) ||
      !pvx_get_fd(env, argv[1], &fds[PROVIDER]) ||
      !pvx_get_integer(env, argv[3], "idleHalfOpenMs", 1, INT32_MAX, &idle_ms))
    return NULL;
  tally *t = pvx_get_tagged(env, argv[2], &tally_tag, "not a relay tally");
  if (t == NULL) return NULL;
  if (napi_typeof(env, argv[4], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "the callback must be a function");
    return NULL;
  }
  engine *e = engine_get(env);
  pvx_relay *r = e != NULL ? calloc(1, sizeof *r) : NULL;
  if (r == NULL) {
    pvx_throw_errno(env, ENOMEM, held ? "tallyRelay" : "relayStart", NULL);
    return NULL;
  }
  if (napi_create_reference(env, argv[4], 1, &r->on_end) != napi_ok) {
    free(r);
    return NULL;
  }
  if (held) {
    /* From here the relay owns the fds; with no JS handle, it is freed once its end went by (report_ended). */
    r->held = true;
    r->external_released = true;
    t->running++;
    relay_begin(e, r, fds, t, idle_ms);
    napi_get_undefined(env, &result);
    return result;
  }
  if (napi_create_external(env, r, on_relay_finalized, NULL, &result) != napi_ok) {
    napi_delete_reference(env, r->on_end);
    free(r);
    return NULL;
  }
  if (napi_type_tag_object(env, result, &relay_tag) != napi_ok) {
    /* Not started: the fds are still the caller's, and the finalizer frees r (it has no engine). */
    napi_delete_reference(env, r->on_end);
    r->on_end = NULL;
    r->ended = true;
    return NULL;
  }
  /* From here the relay owns the fds, and the finalizer frees it once it ended. */
  relay_begin(e, r, fds, t, idle_ms);
  return result;
}

static napi_value js_relay_start(napi_env env, napi_callback_info info) { return start_relay(env, info, false); }

static napi_value js_tally_relay(napi_env env, napi_callback_info info) { return start_relay(env, info, true); }

static napi_value js_tally_end_all(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  if (!pvx_get_args(env, info, 1, argv)) return NULL;
  tally *t = pvx_get_tagged(env, argv[0], &tally_tag, "not a relay tally");
  if (t == NULL) return NULL;
  if (current != NULL && t->running > 0)
    for (pvx_relay *r = current->relays; r != NULL; r = r->next)
      if (r->held && r->tally == t && !r->ended) end_relay(r, RELAY_CLOSED);
  napi_get_undefined(env, &result);
  return result;
}

static napi_value js_relay_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  if (!pvx_get_args(env, info, 1, argv)) return NULL;
  pvx_relay *r = pvx_get_tagged(env, argv[0], &relay_tag, "not a relay");
  if (r == NULL) return NULL;
  if (r->on_end != NULL) napi_delete_reference(env, r->on_end);
  r->on_end = NULL;
  if (r->engine != NULL) end_relay(r, RELAY_CLOSED);
  napi_get_undefined(env, &result);
  return result;
}

napi_status pvx_init_relay(napi_env env, napi_value exports) {
  napi_status status = pvx_export(env, exports, "relayTally", js_relay_tally);
  if (status == napi_ok) status = pvx_export(env, exports, "tallyRead", js_tally_read);
  if (status == napi_ok) status = pvx_export(env, exports, "tallyRunning", js_tally_running);
  if (status == napi_ok) status = pvx_export(env, exports, "relayStart", js_relay_start);
  if (status == napi_ok) status = pvx_export(env, exports, "relayStop", js_relay_stop);
  if (status == napi_ok) status = pvx_export(env, exports, "tallyRelay", js_tally_relay);
  if (status == napi_ok) status = pvx_export(env, exports, "tallyEndAll", js_tally_end_all);
  return status;
}
