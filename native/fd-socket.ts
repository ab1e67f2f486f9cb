/**
 * Unix stream sockets that carry file descriptors (SCM_RIGHTS) next to their bytes, on top of the
 * small synchronous primitives of native/src/fdio.c driven by uv_poll.
 *
 * Ownership of file descriptors:
 * - `new FdSocket(fd)` adopts fd: it is closed by destroy(). If the constructor throws, the caller still
 *   owns fd.
 * - Fds delivered in a 'data' chunk belong to the listener: close them (closeFds, native/fds.ts) or hand
 *   them to write(). Received fds are close-on-exec. A chunk read while no 'data' listener is attached
 *   (after an explicit resume()) is dropped and its fds are closed.
 * - write(data, fds) TAKES OWNERSHIP of the fds: the socket closes them once sent (the kernel holds
 *   its own references by then) or when it is destroyed with them unsent, and also when write() is
 *   called on a destroyed socket. Only a write() that throws (bad arguments, write after end()) leaves
 *   them with the caller.
 *
 * Ordering: the fds of a write go out with the FIRST byte of that write. If sendmsg takes only part of
 * it, the fds went with that part and the rest follows without fds. A later write that carries fds is
 * never merged into an earlier sendmsg; writes without fds are coalesced (one sendmsg, several iovecs;
 * see write-queue.ts). The kernel may deliver bytes written before an fd-carrying write in the same recv
 * as those fds, but a recv never reads past the segment that carries fds: fds never arrive after their
 * first byte.
 *
 * Events: 'data' (Chunk), 'end' (peer half-closed; the socket stays writable), 'drain' (the queue
 * emptied after write() returned false), 'error' (Error, always followed by 'close'), 'close' (once).
 * 'error' and 'close' are emitted on the next tick after destroy. Reading starts when the first 'data'
 * listener is added unless pause() was called first. The socket closes itself once the peer's EOF was
 * read and our end() has been flushed. Write errors (EPIPE, ECONNRESET, EBADF for a bad fd in write())
 * and read errors destroy the socket with that error. A peer that closes with our data unread resets the
 * connection: what it sent before is still delivered (while flowing), then ECONNRESET. A write that fails
 * with EPIPE (the peer reads no more) ends only our writing while the peer's input is being read: what it sent
 * before it closed is still delivered, then 'end', then the EPIPE error. write() after destroy() (or after such
 * an EPIPE) discards the data, closes the fds and returns false; write() after end() throws
 * ERR_STREAM_WRITE_AFTER_END.
 *
 * transferTo() moves a given number of bytes from one socket to another inside the kernel (splice through a
 * pipe, splice-pipe.ts), for bodies a filter need not see: no 'data' for them, and no copy into or out of the
 * process.
 */
// Buffer imported, not the global: that is an accessor, called on every use (twice per chunk here).
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import {
  type Chunk,
  codedError,
  EVENT_DATA,
  EVENT_END,
  EVENT_ERROR,
  EVENT_READY,
  EVENT_WRITABLE,
  fdio,
  MAX_FDS_PER_SENDMSG,
  type PeerCred,
  POLL_READABLE,
  POLL_READY,
  POLL_WRITABLE,
  toError,
  type WatchHandle,
} from './fdio.js';
import { closeFds } from './fds.js';
import { SplicePipe } from './splice-pipe.js';
import { WriteQueue } from './write-queue.js';

export type { Chunk, PeerCred };

export interface FdSocketOptions {
  /** write() returns false once this many bytes are queued. Default 256 KiB. */
  highWaterMark?: number;
  /** Most bytes one recvmsg reads. Default 64 KiB. */
  readSize?: number;
}

const DEFAULT_HIGH_WATER_MARK = 256 * 1024;
const DEFAULT_READ_SIZE = 64 * 1024;

type NewListenerArgs = [event: string | symbol, listener: (...args: unknown[]) => void];

export type FdSocketEvents = {
  data: [chunk: Chunk];
  end: [];
  drain: [];
  error: [error: Error];
  close: [];
  newListener: NewListenerArgs;
  removeListener: NewListenerArgs;
};

/** Bytes on their way from one FdSocket to another through a pipe (see FdSocket.transferTo). */
interface Transfer {
  readonly source: FdSocket;
  readonly target: FdSocket;
  readonly pipe: SplicePipe;
  readonly onProgress: (bytes: number) => void;
  readonly onDone: (moved: number) => void;
}

/** The event set of every FdSocket of this thread. */
const sockets = fdio.eventSet();
/**
 * The primitives called per message, taken once: the addon's exports object holds 41 functions in dictionary mode,
 * so `fdio.send` would be a lookup per call.
 */
const { send, watchUpdate } = fdio;

/** Checks socket options and fills in the defaults. */
export function checkSocketOptions(options: FdSocketOptions): Required<FdSocketOptions> {
  const { highWaterMark = DEFAULT_HIGH_WATER_MARK, readSize = DEFAULT_READ_SIZE } = options;
  if (!Number.isSafeInteger(highWaterMark) || highWaterMark < 1)
    throw new RangeError('highWaterMark must be a positive integer');
  if (!Number.isSafeInteger(readSize) || readSize < 1 || readSize > 16 * 1024 * 1024)
    throw new RangeError('readSize must be an integer in [1, 16 MiB]');
  return { highWaterMark, readSize };
}

function checkFds(fds: readonly number[]): void {
  if (fds.length > MAX_FDS_PER_SENDMSG)
    throw new RangeError(`at most ${MAX_FDS_PER_SENDMSG} fds can go with one write, got ${fds.length}`);
  for (const fd of fds)
    if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw new TypeError(`not an fd: ${fd}`);
}

export class FdSocket extends EventEmitter<FdSocketEvents> {
  readonly fd: number;
  readonly #highWaterMark: number;
  readonly #watch: WatchHandle;
  #pollEvents = 0;

  readonly #writes = new WriteQueue();
  #flushScheduled = false;
  #waitingWritable = false;
  #needDrain = false;
  #endRequested = false;
  #writableFinished = false;
  /** An EPIPE from a send while the peer's input is still read: the socket's error once that input has ended. */
  #writeError: Error | null = null;

  /** null until reading is requested (first 'data' listener or resume()); false after pause(). */
  #flowing: boolean | null = null;
  /** The transfer taking this socket's input, and the one feeding its output. */
  #outgoing: Transfer | null = null;
  #incoming: Transfer | null = null;
  #readableEnded = false;
  #destroyed = false;
  /**
   * The one 'data' listener, called without emit (which looks the event up and spreads its arguments for every
   * chunk); null: none or several (emit decides); undefined: listeners changed since it was looked up.
   */
  #dataListener: ((chunk: Chunk) => void) | null | undefined = undefined;

  constructor(fd: number, options: FdSocketOptions = {}) {
    super();
    const { highWaterMark, readSize } = checkSocketOptions(options);
    this.fd = fd;
    this.#highWaterMark = highWaterMark;
    fdio.setNonBlocking(fd);
    this.#watch = fdio.watch(sockets, fd, 0, readSize, (event, source, offset, length, fds) =>
      this.#onEvent(event, source, offset, length, fds),
    );
    this.on('newListener', this.#onNewListener);
    this.on('removeListener', this.#onRemoveListener);
  }

  /** Listeners of the socket's own, kept through removeAllListeners. */
  readonly #onNewListener = (event: string | symbol): void => {
    if (event !== 'data') return;
    this.#dataListener = undefined;
    if (this.#flowing === null) this.resume();
  };
  readonly #onRemoveListener = (event: string | symbol): void => {
    if (event === 'data') this.#dataListener = undefined;
  };

  /** As EventEmitter's, keeping the socket's own watch on its listeners. */
  override removeAllListeners(event?: keyof FdSocketEvents): this {
    if (event === undefined) super.removeAllListeners();
    else super.removeAllListeners(event);
    this.#dataListener = undefined;
    // What this removed of the socket's own watch goes back.
    if (event === undefined || event === 'newListener') this.on('newListener', this.#onNewListener);
    if (event === undefined || event === 'removeListener') this.on('removeListener', this.#onRemoveListener);
    return this;
  }

  get writableLength(): number {
    return this.#writes.bytes;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  get readableEnded(): boolean {
    return this.#readableEnded;
  }

  /** Open both ways, nothing queued to write, no transfer: detach() would leave nothing behind. */
  get detachable(): boolean {
    return (
      !this.#destroyed &&
      this.#writes.empty &&
      this.#outgoing === null &&
      this.#incoming === null &&
      !this.#endRequested &&
      !this.#readableEnded &&
      this.#writeError === null
    );
  }

  /** Queues data (and fds, see the ownership rules above). False once writableLength >= highWaterMark. */
  write(data: Buffer, fds?: readonly number[]): boolean {
    if (!Buffer.isBuffer(data)) throw new TypeError('data must be a Buffer');
    const attached = fds !== undefined && fds.length > 0 ? [...fds] : null;
    if (attached) {
      checkFds(attached);
      if (data.length === 0) throw new RangeError('fds need at least one byte of data to travel with');
    }
    if (this.#destroyed || this.#writeError) {
      if (attached) closeFds(attached);
      return false;
    }
    if (this.#endRequested) throw codedError('ERR_STREAM_WRITE_AFTER_END', 'write after end');
    if (data.length > 0) {
      this.#writes.push(data, attached);
      this.#scheduleFlush();
    }
    if (this.#writes.bytes < this.#highWaterMark) return true;
    this.#needDrain = true;
    return false;
  }

  /** Half-closes (shutdown SHUT_WR) once everything written before has been sent. */
  end(): void {
    if (this.#endRequested || this.#destroyed || this.#writeError) return;
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
    const transfer: Transfer = { source: this, target, pipe: new SplicePipe(length), onProgress, onDone };
    this.#outgoing = transfer;
    target.#incoming = transfer;
    target.#writes.hold();
    this.#updatePoll();
  }

  /**
   * Gives the fd up, open, to the caller (who then owns it): polling stops and the socket is done as after
   * destroy(), without closing the fd; 'close' follows on the next tick. Only while `detachable`, so that no byte
   * this socket took on is left behind; throws ERR_INVALID_STATE otherwise.
   * Bytes the peer sent that were not read yet stay in the kernel for the fd's next reader.
   */
  detach(): number {
    if (!this.detachable)
      throw codedError(
        'ERR_INVALID_STATE',
        'cannot detach a socket with writes, a transfer or an end pending',
      );
    this.#destroyed = true;
    fdio.watchStop(this.#watch);
    process.nextTick(() => this.emit('close'));
    return this.fd;
  }

  /** Stops polling, closes the fd and every fd still queued; emits 'error' (if given) then 'close', once. */
  destroy(error?: Error): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    fdio.watchStop(this.#watch); // before closing: epoll must drop the fd while it is still ours
    closeFds([this.fd]);
    for (const transfer of [this.#outgoing, this.#incoming]) if (transfer) FdSocket.#cancel(transfer);
    this.#writes.clear();
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
    watchUpdate(this.#watch, events);
  }

  /** Read as usual, or only be told when there is something to splice (while the pipe has room). */
  #readInterest(): number {
    const transfer = this.#outgoing;
    if (transfer === null) return POLL_READABLE;
    return transfer.pipe.wantsInput ? POLL_READY : 0;
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
    let took: boolean;
    try {
      took = transfer.pipe.fill(this.fd);
    } catch (error) {
      this.destroy(toError(error));
      return;
    }
    if (!took) return;
    this.#updatePoll();
    transfer.target.#spliceOut();
  }

  /** Gives the target what the pipe holds, once its own earlier writes are out; ends the transfer when done. */
  #spliceOut(): void {
    const transfer = this.#incoming;
    if (transfer === null || !this.#writes.empty) return;
    const { pipe } = transfer;
    while (pipe.held > 0) {
      let given: number;
      try {
        given = pipe.drainInto(this.fd);
      } catch (error) {
        this.destroy(toError(error));
        return;
      }
      if (given < 0) {
        this.#setWaitingWritable(true);
        return;
      }
      transfer.onProgress(given);
      if (this.#destroyed || transfer.source.#destroyed) return;
    }
    this.#setWaitingWritable(false);
    if (pipe.expecting) {
      transfer.source.#updatePoll(); // the pipe has room again
      return;
    }
    FdSocket.#finish(transfer);
  }

  /** The transfer is over: both sockets go back to their own reads and writes, then its owner hears of it. */
  static #finish(transfer: Transfer): void {
    FdSocket.#release(transfer);
    transfer.target.#flush();
    transfer.onDone(transfer.pipe.moved);
    if (transfer.pipe.sourceEnded && !transfer.source.#destroyed) transfer.source.#onEnd();
  }

  /** One of the sockets is destroyed: the other goes back to its own reads and writes. */
  static #cancel(transfer: Transfer): void {
    FdSocket.#release(transfer);
    if (!transfer.target.#destroyed) transfer.target.#flush();
  }

  /** Closes the pipe; the source reads again, the writes the target held join its queue. */
  static #release({ source, target, pipe }: Transfer): void {
    source.#outgoing = null;
    target.#incoming = null;
    pipe.close();
    source.#updatePoll();
    target.#writes.release();
  }

  #deliver(chunk: Chunk): void {
    let listener = this.#dataListener;
    if (listener === undefined)
      listener = this.#dataListener =
        this.listenerCount('data') === 1 ? (this.rawListeners('data')[0] as (chunk: Chunk) => void) : null;
    if (listener) listener.call(this, chunk);
    else if (!this.emit('data', chunk)) closeFds(chunk.fds); // nobody to own them
  }

  #scheduleFlush(): void {
    // While waiting for POLLOUT the poll callback flushes; otherwise batch this tick's writes.
    if (this.#flushScheduled || this.#waitingWritable) return;
    this.#flushScheduled = true;
    // One microtask flushes every socket written to in this tick (a batch of events writes to many).
    const last = FdSocket.#lastToFlush;
    FdSocket.#lastToFlush = this;
    if (last) last.#nextToFlush = this;
    else {
      FdSocket.#firstToFlush = this;
      queueMicrotask(FdSocket.#flushAll);
    }
  }

  /**
   * Sockets with writes waiting for the end of this tick, in the order they were first written to: a list through
   * the sockets themselves, so that scheduling a flush allocates nothing.
   */
  static #firstToFlush: FdSocket | null = null;
  static #lastToFlush: FdSocket | null = null;
  #nextToFlush: FdSocket | null = null;

  static #flushAll = (): void => {
    let socket = FdSocket.#firstToFlush;
    FdSocket.#firstToFlush = FdSocket.#lastToFlush = null;
    while (socket) {
      const next = socket.#nextToFlush;
      socket.#nextToFlush = null;
      socket.#flushScheduled = false;
      socket.#flush();
      socket = next;
    }
  };

  #flush(): void {
    const writes = this.#writes;
    while (!this.#destroyed && !writes.empty) {
      const batch = writes.batch();
      let sent: number;
      try {
        sent = send(this.fd, batch.buffers, batch.offset, batch.fds);
      } catch (error) {
        this.#failWrite(toError(error));
        return;
      }
      if (sent < 0) {
        this.#setWaitingWritable(true);
        return;
      }
      writes.sent(sent);
      // A short write means the socket buffer is full: wait for POLLOUT instead of an EAGAIN round trip.
      if (sent < batch.bytes) {
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
    if (this.#endRequested && !this.#writableFinished && !this.#destroyed && writes.bytes === 0) {
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

  /**
   * A send failed. EPIPE says that the peer reads no more, not that it sent nothing more: while its input is (or
   * will be) read, the rest of it is still delivered and the error follows its end. Anything else ends the socket.
   */
  #failWrite(error: Error): void {
    if ((error as NodeJS.ErrnoException).code !== 'EPIPE' || this.#flowing === null || this.#readableEnded) {
      this.destroy(error);
      return;
    }
    this.#writeError = error;
    this.#writes.clear();
    this.#setWaitingWritable(false);
  }

  #setWaitingWritable(waiting: boolean): void {
    this.#waitingWritable = waiting;
    this.#updatePoll();
  }

  #closeIfDone(): void {
    if (this.#readableEnded && (this.#writableFinished || this.#writeError))
      this.destroy(this.#writeError ?? undefined);
  }
}
