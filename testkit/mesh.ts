// Building blocks for daemon tests: providers served from this process on sockets planted inside a container's
// namespace, clients connecting from inside a container, graph entries, and small waiting helpers.
import { openSync, readdirSync, readlinkSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, type DaemonOptions } from '../daemon/daemon.js';
import { createLogger, type Fields, type Logger, silentLogger } from '../log/logger.js';
import { FdListener } from '../native/fd-listener.js';
import { type Chunk, FdSocket } from '../native/fd-socket.js';
import { closeFd } from '../native/fds.js';
import { connectIn, listenIn } from '../native/namespace.js';
import type { GraphEntry } from '../protocols/graph/xconnect-graph.js';
import type { FakeCtrl } from './fake-ctrl.js';

export interface Provider {
  connections: number;
  close(): void;
}

/** Serves `handle` on a socket planted at `path` inside the namespace of `pid` (0 = host). */
export async function startProvider(
  pid: number,
  path: string,
  handle: (socket: FdSocket) => void = echo,
): Promise<Provider> {
  const { fd } = await listenIn({ pid, path });
  const listener = new FdListener(fd);
  const sockets = new Set<FdSocket>();
  const provider: Provider = {
    connections: 0,
    close() {
      listener.close();
      for (const socket of sockets) socket.destroy();
    },
  };
  listener.on('connection', (socket: FdSocket) => {
    provider.connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    handle(socket);
  });
  return provider;
}

/** Echoes bytes and fds back; half-closes when the peer does. */
export function echo(socket: FdSocket): void {
  socket.on('data', ({ data, fds }: Chunk) => {
    if (!socket.write(data, fds)) socket.pause();
  });
  socket.on('drain', () => socket.resume());
  socket.on('end', () => socket.end());
}

/** A client socket connected from inside the namespace of `pid`. */
export async function connectFrom(pid: number, path: string): Promise<FdSocket> {
  const socket = new FdSocket(await connectIn({ pid, path }));
  socket.on('error', () => {});
  return socket;
}

export interface Received {
  data: Buffer;
  fds: number[];
}

/** Everything the socket receives until EOF. */
export function readToEnd(socket: FdSocket): Promise<Received> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const fds: number[] = [];
    socket.on('data', (chunk: Chunk) => {
      parts.push(chunk.data);
      fds.push(...chunk.fds);
    });
    socket.once('end', () => resolve({ data: Buffer.concat(parts), fds }));
    socket.once('error', reject);
    socket.once('close', () => resolve({ data: Buffer.concat(parts), fds }));
  });
}

/** Reads until `length` bytes arrived. */
export function readBytes(socket: FdSocket, length: number): Promise<Received> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const fds: number[] = [];
    let size = 0;
    const onData = (chunk: Chunk) => {
      parts.push(chunk.data);
      fds.push(...chunk.fds);
      size += chunk.data.length;
      if (size >= length) {
        socket.off('data', onData);
        resolve({ data: Buffer.concat(parts), fds });
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('end', () => reject(new Error(`EOF after ${size} of ${length} bytes`)));
  });
}

/** A file with known content, opened for reading and writing: its fd is what tests pass around. */
export function fileWithContent(content: string): number {
  const path = join(tmpdir(), `pvx-fd-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const fd = openSync(path, 'w+');
  rmSync(path);
  writeSync(fd, content, 0);
  return fd;
}

/** How many fds of this process are open on files that fileWithContent made (any copy, whoever holds it). */
export function fileWithContentFds(): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).includes(`/pvx-fd-${process.pid}-`);
    } catch {
      return false; // the directory's own fd, closed by now
    }
  }).length;
}

export function contentOf(fd: number): string {
  const buffer = Buffer.alloc(4096);
  const length = readSync(fd, buffer, 0, buffer.length, 0);
  return buffer.subarray(0, length).toString();
}

export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Open pidfds: one per pinned container namespace not freed yet (a released pin frees it after its worker). */
export function pidfdCount(): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[pidfd]';
    } catch {
      return false; // the directory's own fd, closed by now
    }
  }).length;
}

export function closeAll(fds: number[]): void {
  for (const fd of fds) closeFd(fd);
}

/**
 * How long a test waits for another party (the daemon, a container, a client) before it fails. Generous on
 * purpose: a wait ends as soon as its condition holds, so only a condition that never comes pays it, and a loaded
 * 2-core machine never fails a test that only needed more time.
 */
export const PATIENCE_MS = 15_000;

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = PATIENCE_MS,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Waits for a steady state: `sample` gives the same value on `polls` polls in a row, and that value is returned.
 * The polls are 20 ms apart and each comes after the event loop has served whatever I/O was ready, so in-process
 * peers (daemon, relay, providers, clients) have had `polls` chances to move on: this is how a test waits for
 * something to stop (a flood held back, a paused reader) without guessing a duration. An error thrown by
 * `sample` (a bound already broken) fails at once.
 */
export async function settled<T>(
  sample: () => T,
  what: string,
  polls = 10,
  timeoutMs = PATIENCE_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = sample();
  for (let same = 0; same < polls; ) {
    if (Date.now() > deadline)
      throw new Error(`${what} did not settle within ${timeoutMs} ms (last: ${value})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const next = sample();
    same = Object.is(next, value) ? same + 1 : 0;
    value = next;
  }
  return value;
}

/** Lets the event loop go round `count` times, each serving the I/O that is ready (in-process peers react). */
export function loopTurns(count: number): Promise<void> {
  let chain = Promise.resolve();
  for (let i = 0; i < count; i++) chain = chain.then(() => new Promise((resolve) => setImmediate(resolve)));
  return chain;
}

/** A graph entry between two containers; null stands for the host (`_pv_`, pid 0). */
export function graphEntry(
  type: string,
  consumer: { pid: number } | null,
  provider: { pid: number } | null,
  overrides: Partial<GraphEntry> = {},
): GraphEntry {
  return {
    consumer: consumer ? 'app' : '_pv_',
    consumer_pid: consumer?.pid ?? 0,
    provider: provider ? 'svc' : '_pv_',
    provider_pid: provider?.pid ?? 0,
    name: type,
    type,
    socket: '/run/p/echo.sock',
    target: null,
    ...overrides,
  };
}

/** The daemon in this process against a fake pv-ctrl, quiet, polling fast. */
export async function startTestDaemon(
  ctrl: FakeCtrl,
  options: Partial<Omit<DaemonOptions, 'ctrlSocket'>> = {},
): Promise<Daemon> {
  const daemon = new Daemon({
    ctrlSocket: ctrl.socketPath,
    intervalMs: 200,
    statusSocket: null,
    log: silentLogger,
    ...options,
  });
  await daemon.start();
  return daemon;
}

/** Waits until every link of the daemon is active. */
export function allLinksActive(daemon: Daemon, timeoutMs = PATIENCE_MS): Promise<true> {
  return eventually(
    () => daemon.reconciler.list().every((link) => link.state === 'active'),
    timeoutMs,
    'every link to be active',
  );
}

/** A logger that keeps every line, debug and up, as a parsed JSON object in `lines`. */
export function recordingLogger(lines: Fields[]): Logger {
  return createLogger({ level: 'debug', format: 'json', write: (line) => lines.push(JSON.parse(line)) });
}

export type { GraphEntry };
