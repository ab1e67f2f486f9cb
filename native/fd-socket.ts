/**
 * Unix stream sockets that carry file descriptors (SCM_RIGHTS) next to their bytes, on top of the
 * small synchronous primitives of native/src/fdio.c driven by uv_poll.
 *
 * Ownership of file descriptors:
 * - `new FdSocket(fd)` / `new FdListener(fd)` adopt fd: it is closed by destroy()/close(). If the
 *   constructor throws, the caller still owns fd.
 * - Fds delivered in a 'data' chunk belong to the listener: close them with closeFd() or hand them to
 *   write(). Received fds are close-on-exec. A chunk read while no 'data' listener is attached (after
 *   an explicit resume()) is dropped and its fds are closed.
 * - write(data, fds) TAKES OWNERSHIP of the fds: the socket closes them once sent (the kernel holds
 *   its own references by then) or when it is destroyed with them unsent, and also when write() is
 *   called on a destroyed socket. Only a write() that throws (bad arguments, write after end()) leaves
 *   them with the caller.
 *
 * Ordering: the fds of a write go out with the FIRST byte of that write. If sendmsg takes only part of
 * it, the fds went with that part and the rest follows without fds. A later write that carries fds is
 * never merged into an earlier sendmsg; writes without fds are coalesced (one sendmsg, several iovecs).
 * The kernel may deliver bytes written before an fd-carrying write in the same recv as those fds, but a
 * recv never reads past the segment that carries fds: fds never arrive after their first byte.
 *
 * FdSocket events: 'data' (Chunk), 'end' (peer half-closed; the socket stays writable), 'drain' (the
 * queue emptied after write() returned false), 'error' (Error, always followed by 'close'), 'close'
 * (once). 'error' and 'close' are emitted on the next tick after destroy. Reading starts when the first
 * 'data' listener is added unless pause() was called first. The socket closes itself once the peer's
 * EOF was read and our end() has been flushed. Write errors (EPIPE, ECONNRESET, EBADF for a bad fd in
 * write()) and read errors destroy the socket with that error. A peer that closes with our data unread
 * resets the connection: what it sent before is still delivered (while flowing), then ECONNRESET. write() after destroy() discards the
 * data, closes the fds and returns false; write() after end() throws ERR_STREAM_WRITE_AFTER_END.
 *
 * transferTo() moves a given number of bytes from one socket to another inside the kernel (splice through a
 * pipe), for bodies a filter need not see: no 'data' for them, and no copy into or out of the process.
 *
 * FdListener: accepting starts when the first 'connection' listener is added (not at construction), so
 * no connection is accepted without someone to take it; a connection emitted with no listener left is
 * destroyed. Running out of fds (EMFILE, ENFILE, ENOBUFS, ENOMEM) stops accepting for 100 ms, then it
 * retries; 'error' is emitted once per such episode WITHOUT 'close' (the listener keeps going). Any
 * other accept failure emits 'error' and then 'close'. close() never unlinks anything.
 */
import { EventEmitter } from 'node:events';
import { binding } from './binding.js';

export interface Chunk {
  data: Buffer;
  fds: number[];
}

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export interface FdSocketOptions {
  /** write() returns false once this many bytes are queued. Default 256 KiB. */
  highWaterMark?: number;
  /** Most bytes one recvmsg reads. Default 64 KiB. */
  readSize?: number;
}

/** An opaque uv_poll handle owned by the addon. */
type PollHandle = { readonly pollHandle: unique symbol };
type PollCallback = (error: Error | null, readable: boolean, writable: boolean) => void;
/** An opaque event set (sockets served in batches, see native/src/fdio.c) owned by the addon. */
type EventSetHandle = { readonly eventSetHandle: unique symbol };
/** An opaque registration of one socket in an event set. */
type WatchHandle = { readonly watchHandle: unique symbol };
/**
 * What a watched socket reports (the first argument says which): EVENT_WRITABLE; EVENT_READY (readable, when
 * watched with POLL_READY); EVENT_DATA with its `length` bytes (`source` is an ArrayBuffer holding them at
 * `offset`, or, with offset -1, a Buffer of exactly them) and its fds (null if none came); EVENT_END;
 * EVENT_ERROR with the Error.
 */
type WatchCallback = (
  event: number,
  source?: ArrayBuffer | Buffer | Error,
  offset?: number,
  length?: number,
  fds?: number[] | null,
) => void;

/** The raw primitives of native/src/fdio.c (documented there). Prefer FdSocket and FdListener. */
export interface FdioBinding {
  socketPair(): [number, number];
  /** null: would block; data.length === 0: end of stream. Throws code 'ECTRUNC' if fds were lost. */
  recv(fd: number, maxBytes: number): Chunk | null;
  /** Bytes sent, or -1 if it would block. fds go with the first byte of buffers[0] (from offset). */
  send(fd: number, buffers: readonly Buffer[], offset: number, fds: readonly number[] | null): number;
  shutdownWrite(fd: number): void;
  close(fd: number): void;
  dup(fd: number): number;
  setNonBlocking(fd: number): void;
  peerCred(fd: number): PeerCred;
  peerGroups(fd: number): number[];
  /** An accepted fd, or -1 if none is pending. */
  accept(fd: number): number;
  listenFd(path: string, backlog: number): number;
  /** events: POLL_READABLE | POLL_WRITABLE, 0 parks the handle. Stop the poll before closing its fd. */
  pollStart(fd: number, events: number, callback: PollCallback): PollHandle;
  pollUpdate(handle: PollHandle, events: number): void;
  pollStop(handle: PollHandle): void;
  /** A new event set: its ready sockets are served together once per turn of the loop, then the microtasks run. */
  eventSet(): EventSetHandle;
  /**
   * Watches a stream socket in `set`: writable events, and the socket read (up to readSize bytes a recvmsg)
   * whenever it is readable and `events` has POLL_READABLE (only reported with POLL_READY). Stop the watch
   * before closing its fd.
   */
  watch(
    set: EventSetHandle,
    fd: number,
    events: number,
    readSize: number,
    callback: WatchCallback,
  ): WatchHandle;
  watchUpdate(handle: WatchHandle, events: number): void;
  /** Idempotent; no callback follows. */
  watchStop(handle: WatchHandle): void;
  /** A non-blocking, close-on-exec pipe of up to 1 MiB: [readFd, writeFd, capacity]. */
  pipe(): [number, number, number];
  /** Bytes moved from one fd to another inside the kernel (one is a pipe); 0 at end of stream, -1 would block. */
  splice(fromFd: number, toFd: number, maxBytes: number): number;
}

export const fdio = binding as FdioBinding;

const POLL_READABLE = 1;
const POLL_WRITABLE = 2;
/** Readable, reported without reading (a transfer splices instead). */
const POLL_READY = 4;
const EVENT_WRITABLE = 0;
const EVENT_DATA = 1;
const EVENT_END = 2;
const EVENT_ERROR = 3;
const EVENT_READY = 4;
/** The kernel's SCM_MAX_FD: most fds one sendmsg can carry. */
export const MAX_FDS_PER_WRITE = 253;

const DEFAULT_HIGH_WATER_MARK = 256 * 1024;
const DEFAULT_READ_SIZE = 64 * 1024;
/** Coalescing limits of one sendmsg. */
const MAX_BATCH_BUFFERS = 64;
const MAX_BATCH_BYTES = 1024 * 1024;
/** Connections accepted per readiness callback before yielding to the event loop. */
const ACCEPT_BUDGET = 64;
/** Pause of accepting after the process or system ran out of fds or memory. */
const ACCEPT_RETRY_MS = 100;

const RESOURCE_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);
/** accept4 failures that concern only the connection being accepted. */
const CONNECTION_ERRORS = new Set(['ECONNABORTED', 'EPROTO', 'EPERM']);

type NewListenerArgs = [event: string | symbol, listener: (...args: unknown[]) => void];

export type FdSocketEvents = {
  data: [chunk: Chunk];
  end: [];
  drain: [];
  error: [error: Error];
  close: [];
  newListener: NewListenerArgs;
};

export type FdListenerEvents = {
  connection: [socket: FdSocket];
  error: [error: Error];
  close: [];
  newListener: NewListenerArgs;
};

interface QueuedWrite {
  data: Buffer;
  /** Still ours to send (and close); null once sent or when the write had none. */
  fds: number[] | null;
}

/** Bytes on their way from one FdSocket to another through a pipe (see FdSocket.transferTo). */
interface Transfer {
  readonly source: FdSocket;
  readonly target: FdSocket;
  readonly pipeRead: number;
  readonly pipeWrite: number;
  readonly capacity: number;
  /** Still to take from the source. */
  remaining: number;
  /** Taken from the source, not yet given to the target. */
  inPipe: number;
  moved: number;
  /** The source's stream ended before all were taken: its 'end' follows the transfer. */
  sourceEnded: boolean;
  readonly onProgress: (bytes: number) => void;
  readonly onDone: (moved: number) => void;
}

/** The event set of every FdSocket of this thread. */
const sockets = fdio.eventSet();

function toError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(String(thrown));
}

function codedError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Closes fds this module owns; a failure (an fd that was never valid) leaves nothing to undo. */
function closeOwned(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      fdio.close(fd);
    } catch {}
  }
}

function checkOptions(options: FdSocketOptions): { highWaterMark: number; readSize: number } {
  const { highWaterMark = DEFAULT_HIGH_WATER_MARK, readSize = DEFAULT_READ_SIZE } = options;
  if (!Number.isSafeInteger(highWaterMark) || highWaterMark < 1)
    throw new RangeError('highWaterMark must be a positive integer');
  if (!Number.isSafeInteger(readSize) || readSize < 1 || readSize > 16 * 1024 * 1024)
    throw new RangeError('readSize must be an integer in [1, 16 MiB]');
  return { highWaterMark, readSize };
}

function checkFds(fds: readonly number[]): void {
  if (fds.length > MAX_FDS_PER_WRITE)
    throw new RangeError(`at most ${MAX_FDS_PER_WRITE} fds can go with one write, got ${fds.length}`);
  for (const fd of fds)
    if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw new TypeError(`not an fd: ${fd}`);
}

export class FdSocket extends EventEmitter<FdSocketEvents> {
  readonly fd: number;
  readonly #highWaterMark: number;
  readonly #watch: WatchHandle;
  #pollEvents = 0;

  /** Pending writes from #queueStart on; the first one already sent up to #headOffset. */
  #queue: QueuedWrite[] = [];
  /** Writes made while a transfer into this socket runs: they follow it. */
  #held: QueuedWrite[] = [];
  #queueStart = 0;
  #headOffset = 0;
  #queuedBytes = 0;
  #flushScheduled = false;
  #waitingWritable = false;
  #needDrain = false;
  #endRequested = false;
  #writableFinished = false;

  /** null until reading is requested (first 'data' listener or resume()); false after pause(). */
  #flowing: boolean | null = null;
  /** The transfer taking this socket's input, and the one feeding its output. */
  #outgoing: Transfer | null = null;
  #incoming: Transfer | null = null;
  #readableEnded = false;
  #destroyed = false;

  constructor(fd: number, options: FdSocketOptions = {}) {
    super();
    const { highWaterMark, readSize } = checkOptions(options);
    this.fd = fd;
    this.#highWaterMark = highWaterMark;
    fdio.setNonBlocking(fd);
    this.#watch = fdio.watch(sockets, fd, 0, readSize, (event, source, offset, length, fds) =>
      this.#onEvent(event, source, offset, length, fds),
    );
    this.on('newListener', (event) => {
      if (event === 'data' && this.#flowing === null) this.resume();
    });
  }

  get writableLength(): number {
    return this.#queuedBytes;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  get readableEnded(): boolean {
    return this.#readableEnded;
  }

  /** Queues data (and fds, see the ownership rules above). False once writableLength >= highWaterMark. */
  write(data: Buffer, fds?: readonly number[]): boolean {
    if (!Buffer.isBuffer(data)) throw new TypeError('data must be a Buffer');
    const attached = fds !== undefined && fds.length > 0 ? [...fds] : null;
    if (attached) {
      checkFds(attached);
      if (data.length === 0) throw new RangeError('fds need at least one byte of data to travel with');
    }
    if (this.#destroyed) {
      if (attached) closeOwned(attached);
      return false;
    }
    if (this.#endRequested) throw codedError('ERR_STREAM_WRITE_AFTER_END', 'write after end');
    if (data.length > 0) {
      (this.#incoming ? this.#held : this.#queue).push({ data, fds: attached });
      this.#queuedBytes += data.length;
      this.#scheduleFlush();
    }
    if (this.#queuedBytes < this.#highWaterMark) return true;
    this.#needDrain = true;
    return false;
  }

  /** Half-closes (shutdown SHUT_WR) once everything written before has been sent. */
  end(): void {
    if (this.#endRequested || this.#destroyed) return;
    this.#endRequested = true;
    this.#scheduleFlush();
  }

  pause(): void {
    this.#flowing = false;
    this.#updatePoll();
  }

  resume(): void {
    this.#flowing = true;
    this.#updatePoll();
  }

  /**
   * Moves the next `length` bytes this socket receives to `target` inside the kernel, after what target has
   * queued: no 'data' is emitted for them and fds that arrive with them are closed. `onProgress(bytes)` runs
   * for every piece handed to target, `onDone(moved)` once all went on, or fewer if this socket's stream ended
   * first (its 'end' follows); neither runs if either socket is destroyed first. pause() and resume() apply.
   * Writes to target made meanwhile are sent after the transfer. One transfer can run each way through a socket.
   * Throws if either socket is destroyed, this one ended, target ended, or a transfer already runs from this
   * socket or into target.
   */
  transferTo(
    target: FdSocket,
    length: number,
    onProgress: (bytes: number) => void,
    onDone: (moved: number) => void,
  ): void {
    if (!Number.isSafeInteger(length) || length < 1)
      throw new RangeError('length must be a positive integer');
    if (
      target === this ||
      this.#destroyed ||
      this.#readableEnded ||
      target.#destroyed ||
      target.#endRequested
    )
      throw codedError('ERR_INVALID_STATE', 'cannot transfer between these sockets now');
    if (this.#outgoing || target.#incoming)
      throw codedError('ERR_INVALID_STATE', 'a transfer is already running from this socket or into target');
    const [pipeRead, pipeWrite, capacity] = fdio.pipe();
    const transfer: Transfer = {
      source: this,
      target,
      pipeRead,
      pipeWrite,
      capacity,
      remaining: length,
      inPipe: 0,
      moved: 0,
      sourceEnded: false,
      onProgress,
      onDone,
    };
    this.#outgoing = transfer;
    target.#incoming = transfer;
    this.#updatePoll();
  }

  /** Stops polling, closes the fd and every fd still queued; emits 'error' (if given) then 'close', once. */
  destroy(error?: Error): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    fdio.watchStop(this.#watch); // before closing: epoll must drop the fd while it is still ours
    closeOwned([this.fd]);
    for (const transfer of [this.#outgoing, this.#incoming]) if (transfer) FdSocket.#cancel(transfer);
    for (let i = this.#queueStart; i < this.#queue.length; i++) {
      const fds = this.#queue[i]?.fds;
      if (fds) closeOwned(fds);
    }
    for (const { fds } of this.#held) if (fds) closeOwned(fds);
    this.#queue = [];
    this.#held = [];
    this.#queueStart = 0;
    this.#queuedBytes = 0;
    process.nextTick(() => {
      if (error) this.emit('error', error);
      this.emit('close');
    });
  }

  /** The peer's credentials when it connected (SO_PEERCRED). Throws once destroyed. */
  peerCred(): PeerCred {
    return fdio.peerCred(this.#openFd());
  }

  /** The peer's supplementary groups when it connected (SO_PEERGROUPS). Throws once destroyed. */
  peerGroups(): number[] {
    return fdio.peerGroups(this.#openFd());
  }

  /** The fd, unless closed: its number may already name another file. */
  #openFd(): number {
    if (this.#destroyed) throw codedError('ERR_SOCKET_CLOSED', 'socket is destroyed');
    return this.fd;
  }

  #updatePoll(): void {
    if (this.#destroyed) return;
    const events =
      (this.#flowing === true && !this.#readableEnded ? this.#readInterest() : 0) |
      (this.#waitingWritable ? POLL_WRITABLE : 0);
    if (events === this.#pollEvents) return;
    this.#pollEvents = events;
    fdio.watchUpdate(this.#watch, events);
  }

  /** Read as usual, or only be told when there is something to splice (while the pipe has room). */
  #readInterest(): number {
    const transfer = this.#outgoing;
    if (transfer === null) return POLL_READABLE;
    const room = transfer.remaining > 0 && !transfer.sourceEnded && transfer.inPipe < transfer.capacity;
    return room ? POLL_READY : 0;
  }

  #onEvent(
    event: number,
    source?: ArrayBuffer | Buffer | Error,
    offset?: number,
    length?: number,
    fds?: number[] | null,
  ): void {
    switch (event) {
      case EVENT_WRITABLE:
        this.#flush();
        return;
      case EVENT_DATA: {
        const data = offset === -1 ? (source as Buffer) : Buffer.from(source as ArrayBuffer, offset, length);
        this.#deliver({ data, fds: fds ?? [] });
        return;
      }
      case EVENT_READY:
        this.#spliceIn();
        return;
      case EVENT_END:
        this.#onEnd();
        return;
      case EVENT_ERROR:
        this.destroy(source as Error);
        return;
    }
  }

  #onEnd(): void {
    this.#readableEnded = true;
    this.#updatePoll();
    this.emit('end');
    this.#closeIfDone();
  }

  /** Takes what the pipe has room for from this socket, and passes it on. */
  #spliceIn(): void {
    const transfer = this.#outgoing as Transfer;
    const max = Math.min(transfer.remaining, transfer.capacity - transfer.inPipe);
    let taken: number;
    try {
      taken = fdio.splice(this.fd, transfer.pipeWrite, max);
    } catch (error) {
      this.destroy(toError(error));
      return;
    }
    if (taken < 0) return;
    if (taken === 0) transfer.sourceEnded = true;
    transfer.remaining -= taken;
    transfer.inPipe += taken;
    this.#updatePoll();
    transfer.target.#spliceOut();
  }

  /** Gives the target what the pipe holds, once its own earlier writes are out; ends the transfer when done. */
  #spliceOut(): void {
    const transfer = this.#incoming;
    if (transfer === null || this.#queueStart < this.#queue.length) return;
    while (transfer.inPipe > 0) {
      let given: number;
      try {
        given = fdio.splice(transfer.pipeRead, this.fd, transfer.inPipe);
      } catch (error) {
        this.destroy(toError(error));
        return;
      }
      if (given < 0) {
        this.#setWaitingWritable(true);
        return;
      }
      transfer.inPipe -= given;
      transfer.moved += given;
      transfer.onProgress(given);
      if (this.#destroyed || transfer.source.#destroyed) return;
    }
    this.#setWaitingWritable(false);
    if (transfer.remaining > 0 && !transfer.sourceEnded) {
      transfer.source.#updatePoll(); // the pipe has room again
      return;
    }
    FdSocket.#finish(transfer);
  }

  /** The transfer is over: both sockets go back to their own reads and writes, then its owner hears of it. */
  static #finish(transfer: Transfer): void {
    FdSocket.#release(transfer);
    transfer.target.#flush();
    transfer.onDone(transfer.moved);
    if (transfer.sourceEnded && !transfer.source.#destroyed) transfer.source.#onEnd();
  }

  /** One of the sockets is destroyed: the other goes back to its own reads and writes. */
  static #cancel(transfer: Transfer): void {
    FdSocket.#release(transfer);
    if (!transfer.target.#destroyed) transfer.target.#flush();
  }

  /** Closes the pipe; the source reads again, the writes the target held wait in its queue. */
  static #release({ source, target, pipeRead, pipeWrite }: Transfer): void {
    source.#outgoing = null;
    target.#incoming = null;
    closeOwned([pipeRead, pipeWrite]);
    source.#updatePoll();
    target.#queue.push(...target.#held);
    target.#held = [];
  }

  #deliver(chunk: Chunk): void {
    if (!this.emit('data', chunk)) closeOwned(chunk.fds); // nobody to own them
  }

  #scheduleFlush(): void {
    // While waiting for POLLOUT the poll callback flushes; otherwise batch this tick's writes.
    if (this.#flushScheduled || this.#waitingWritable) return;
    this.#flushScheduled = true;
    // One microtask flushes every socket written to in this tick (a batch of events writes to many).
    if (FdSocket.#toFlush.push(this) === 1) queueMicrotask(FdSocket.#flushAll);
  }

  /** Sockets with writes waiting for the end of this tick, in the order they were first written to. */
  static #toFlush: FdSocket[] = [];

  static #flushAll = (): void => {
    const sockets = FdSocket.#toFlush;
    FdSocket.#toFlush = [];
    for (const socket of sockets) {
      socket.#flushScheduled = false;
      socket.#flush();
    }
  };

  #flush(): void {
    while (!this.#destroyed && this.#queueStart < this.#queue.length) {
      const head = this.#queue[this.#queueStart] as QueuedWrite;
      const [buffers, batchBytes] = this.#batch();
      let sent: number;
      try {
        sent = fdio.send(this.fd, buffers, this.#headOffset, head.fds);
      } catch (error) {
        this.destroy(toError(error));
        return;
      }
      if (sent < 0) {
        this.#setWaitingWritable(true);
        return;
      }
      if (head.fds) {
        // They left with the first byte; the kernel holds its own references now.
        closeOwned(head.fds);
        head.fds = null;
      }
      this.#consume(sent);
      // A short write means the socket buffer is full: wait for POLLOUT instead of an EAGAIN round trip.
      if (sent < batchBytes) {
        this.#setWaitingWritable(true);
        return;
      }
    }
    if (this.#destroyed) return;
    if (this.#incoming) {
      this.#spliceOut();
      return;
    }
    this.#setWaitingWritable(false);
    if (this.#needDrain) {
      this.#needDrain = false;
      this.emit('drain');
    }
    if (this.#endRequested && !this.#writableFinished && !this.#destroyed && this.#queuedBytes === 0) {
      try {
        fdio.shutdownWrite(this.fd);
      } catch (error) {
        this.destroy(toError(error));
        return;
      }
      this.#writableFinished = true;
      this.#closeIfDone();
    }
  }

  /** The buffers of the next sendmsg (the head write plus following writes that carry no fds) and their bytes. */
  #batch(): [Buffer[], number] {
    const buffers: Buffer[] = [];
    let bytes = -this.#headOffset;
    for (let i = this.#queueStart; i < this.#queue.length && buffers.length < MAX_BATCH_BUFFERS; i++) {
      const entry = this.#queue[i] as QueuedWrite;
      if (buffers.length > 0 && entry.fds) break;
      buffers.push(entry.data);
      bytes += entry.data.length;
      if (bytes >= MAX_BATCH_BYTES) break;
    }
    return [buffers, bytes];
  }

  #consume(sent: number): void {
    this.#queuedBytes -= sent;
    let remaining = sent + this.#headOffset;
    while (this.#queueStart < this.#queue.length) {
      const length = (this.#queue[this.#queueStart] as QueuedWrite).data.length;
      if (remaining < length) break;
      remaining -= length;
      this.#queueStart += 1;
    }
    this.#headOffset = remaining;
    if (this.#queueStart === this.#queue.length) {
      this.#queue = [];
      this.#queueStart = 0;
    } else if (this.#queueStart >= 1024) {
      this.#queue = this.#queue.slice(this.#queueStart);
      this.#queueStart = 0;
    }
  }

  #setWaitingWritable(waiting: boolean): void {
    this.#waitingWritable = waiting;
    this.#updatePoll();
  }

  #closeIfDone(): void {
    if (this.#readableEnded && this.#writableFinished) this.destroy();
  }
}

export class FdListener extends EventEmitter<FdListenerEvents> {
  readonly fd: number;
  readonly #socketOptions: FdSocketOptions;
  readonly #poll: PollHandle;
  /** null until accepting is requested (first 'connection' listener or resume()); false after pause(). */
  #accepting: boolean | null = null;
  #pollEvents = 0;
  #retryTimer: NodeJS.Timeout | null = null;
  /** Inside a resource exhaustion episode: its 'error' was emitted, the next successful accept ends it. */
  #exhausted = false;
  #closed = false;

  /** Adopts a listening socket fd; accepted sockets get `options`. */
  constructor(fd: number, options: FdSocketOptions = {}) {
    super();
    checkOptions(options);
    this.fd = fd;
    this.#socketOptions = options;
    fdio.setNonBlocking(fd);
    this.#poll = fdio.pollStart(fd, 0, (error) => this.#onPoll(error));
    this.on('newListener', (event) => {
      if (event === 'connection' && this.#accepting === null) this.resume();
    });
  }

  /** Stops accepting; the kernel's backlog holds new connections meanwhile. */
  pause(): void {
    this.#accepting = false;
    this.#updatePoll();
  }

  resume(): void {
    this.#accepting = true;
    this.#updatePoll();
  }

  /** Stops accepting and closes the listening fd (the socket file stays where it is). */
  close(): void {
    this.#shutDown(undefined);
  }

  #shutDown(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    fdio.pollStop(this.#poll); // before closing the fd, as for sockets
    closeOwned([this.fd]);
    process.nextTick(() => {
      if (error) this.emit('error', error);
      this.emit('close');
    });
  }

  #updatePoll(): void {
    if (this.#closed) return;
    const events = this.#accepting === true && this.#retryTimer === null ? POLL_READABLE : 0;
    if (events === this.#pollEvents) return;
    this.#pollEvents = events;
    fdio.pollUpdate(this.#poll, events);
  }

  #onPoll(error: Error | null): void {
    if (this.#closed) return;
    if (error) {
      this.#shutDown(error);
      return;
    }
    for (let i = 0; i < ACCEPT_BUDGET && this.#accepting === true && !this.#closed; i++) {
      let fd: number;
      try {
        fd = fdio.accept(this.fd);
      } catch (thrown) {
        const failure = toError(thrown);
        const code = (failure as NodeJS.ErrnoException).code ?? '';
        if (CONNECTION_ERRORS.has(code)) continue;
        if (RESOURCE_ERRORS.has(code)) this.#backOff(failure);
        else this.#shutDown(failure);
        return;
      }
      if (fd < 0) return;
      this.#exhausted = false;
      this.#deliver(fd);
    }
  }

  #deliver(fd: number): void {
    let socket: FdSocket;
    try {
      socket = new FdSocket(fd, this.#socketOptions);
    } catch {
      closeOwned([fd]); // only fails when memory is short: drop this one connection
      return;
    }
    if (!this.emit('connection', socket)) socket.destroy();
  }

  /** Out of fds or memory: accepting again at once would spin, so wait; report once per episode. */
  #backOff(error: Error): void {
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#updatePoll();
    }, ACCEPT_RETRY_MS);
    this.#updatePoll();
    if (!this.#exhausted) {
      this.#exhausted = true;
      this.emit('error', error);
    }
  }
}

/** A connected pair of FdSockets. */
export function socketPair(options: FdSocketOptions = {}): [FdSocket, FdSocket] {
  const [a, b] = fdio.socketPair();
  let first: FdSocket;
  try {
    first = new FdSocket(a, options);
  } catch (error) {
    closeOwned([a, b]);
    throw error;
  }
  try {
    return [first, new FdSocket(b, options)];
  } catch (error) {
    first.destroy();
    closeOwned([b]);
    throw error;
  }
}

/** A connected pair of raw socket fds (AF_UNIX, SOCK_STREAM, close-on-exec, non-blocking). */
export function socketPairFds(): [number, number] {
  return fdio.socketPair();
}

export function closeFd(fd: number): void {
  fdio.close(fd);
}

/** A close-on-exec duplicate of fd. */
export function dupFd(fd: number): number {
  return fdio.dup(fd);
}

/**
 * A listening Unix socket bound at path (fails if path exists), for tests and benchmarks: the daemon
 * listens through the namespace helpers (native/namespace.ts).
 */
export function listenFd(path: string, backlog = 511): number {
  return fdio.listenFd(path, backlog);
}
