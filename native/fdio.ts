// The raw primitives of native/src/fdio.c, typed (documented there). Code outside native/ uses FdSocket
// (fd-socket.ts), FdListener (fd-listener.ts) and the fd helpers (fds.ts) instead.
import { binding } from './binding.js';

/** Bytes and the fds that came with (or go with) their first byte. */
export interface Chunk {
  data: Buffer;
  fds: number[];
}

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** An opaque uv_poll handle owned by the addon. */
export type PollHandle = { readonly pollHandle: unique symbol };
export type PollCallback = (error: Error | null, readable: boolean, writable: boolean) => void;
/** An opaque event set (sockets served in batches, see native/src/fdio.c) owned by the addon. */
export type EventSetHandle = { readonly eventSetHandle: unique symbol };
/** An opaque registration of one socket in an event set. */
export type WatchHandle = { readonly watchHandle: unique symbol };
/**
 * What a watched socket reports (the first argument says which): EVENT_WRITABLE; EVENT_READY (readable, when
 * watched with POLL_READY); EVENT_DATA with its `length` bytes (`source` is an ArrayBuffer holding them at
 * `offset`, or, with offset -1, a Buffer of exactly them) and its fds (null if none came); EVENT_END;
 * EVENT_ERROR with the Error.
 */
export type WatchCallback = (
  event: number,
  source?: ArrayBuffer | Buffer | Error,
  offset?: number,
  length?: number,
  fds?: number[] | null,
) => void;

export interface FdioBinding {
  socketPair(): [number, number];
  /** null: would block; data.length === 0: end of stream. Throws code 'ECTRUNC' if fds were lost. */
  recv(fd: number, maxBytes: number): Chunk | null;
  /** Bytes sent, or -1 if it would block. fds go with the first byte (of buffers[0], from offset). */
  send(
    fd: number,
    buffers: Buffer | readonly Buffer[],
    offset: number,
    fds: readonly number[] | null,
  ): number;
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

export const POLL_READABLE = 1;
export const POLL_WRITABLE = 2;
/** Readable, reported without reading (a transfer splices instead). */
export const POLL_READY = 4;
export const EVENT_WRITABLE = 0;
export const EVENT_DATA = 1;
export const EVENT_END = 2;
export const EVENT_ERROR = 3;
export const EVENT_READY = 4;

/** The kernel's SCM_MAX_FD: the most fds one sendmsg can carry. */
export const MAX_FDS_PER_SENDMSG = 253;

export function toError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(String(thrown));
}

export function codedError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}
