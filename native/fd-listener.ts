/**
 * A listening Unix stream socket that accepts into FdSockets ('connection'), or hands over the accepted fds
 * themselves ('fd', when someone listens for it: a connection relayed by the addon needs no FdSocket).
 *
 * `new FdListener(fd)` adopts a listening fd: close() closes it (and never unlinks anything). Accepting starts
 * when the first 'connection' or 'fd' listener is added (not at construction), so no connection is accepted
 * without someone to take it; a connection emitted with no listener left is closed. Running out of fds (EMFILE,
 * ENFILE, ENOBUFS, ENOMEM) stops accepting for 100 ms, then it retries; 'error' is emitted once per such
 * episode WITHOUT 'close' (the listener keeps going). Any other accept failure emits 'error' and then 'close'.
 */
import { EventEmitter } from 'node:events';
import { checkSocketOptions, FdSocket, type FdSocketOptions } from './fd-socket.js';
import { fdio, POLL_READABLE, type PollHandle, toError } from './fdio.js';
import { closeFds } from './fds.js';

/** Connections accepted per readiness callback before yielding to the event loop. */
const ACCEPT_BUDGET = 64;
/** Pause of accepting after the process or system ran out of fds or memory. */
const ACCEPT_RETRY_MS = 100;

const RESOURCE_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);
/** accept4 failures that concern only the connection being accepted. */
const CONNECTION_ERRORS = new Set(['ECONNABORTED', 'EPROTO', 'EPERM']);

export type FdListenerEvents = {
  connection: [socket: FdSocket];
  /** An accepted connection's fd (non-blocking, close-on-exec), now the handler's to close. */
  fd: [fd: number];
  error: [error: Error];
  close: [];
  newListener: [event: string | symbol, listener: (...args: unknown[]) => void];
};

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
    checkSocketOptions(options);
    this.fd = fd;
    this.#socketOptions = options;
    fdio.setNonBlocking(fd);
    this.#poll = fdio.pollStart(fd, 0, (error) => this.#onPoll(error));
    this.on('newListener', (event) => {
      if ((event === 'connection' || event === 'fd') && this.#accepting === null) this.resume();
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
    closeFds([this.fd]);
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
    if (this.listenerCount('fd') > 0) {
      this.emit('fd', fd);
      return;
    }
    let socket: FdSocket;
    try {
      socket = new FdSocket(fd, this.#socketOptions);
    } catch {
      closeFds([fd]); // only fails when memory is short: drop this one connection
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
