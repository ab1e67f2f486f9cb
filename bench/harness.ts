// Shared pieces of the benchmarks: timing, percentiles, result files, the daemon as a child process, socat.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import {
  createConnection,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root, from bench/ sources or dist/bench/. */
export const root = existsSync(join(here, '..', 'package.json')) ? join(here, '..') : join(here, '..', '..');

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function round(value: number, digits = 1): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** Writes bench/results/NAME.json with the machine it ran on, and prints the table. */
export function record(
  name: string,
  results: Record<string, unknown>,
  table: Record<string, unknown>[],
): void {
  const file = join(root, 'bench', 'results', `${name}.json`);
  mkdirSync(dirname(file), { recursive: true });
  const machine = { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version };
  writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), machine, ...results }, null, 2)}\n`,
  );
  console.table(table);
  console.log(`recorded ${file}`);
}

export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) : Number.NaN;
}

export async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A pv-ctrl stand-in serving a fixed graph. */
export async function serveGraph(socketPath: string, graph: () => unknown[]): Promise<Server> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(graph()));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return server;
}

/** The real pv-xconnect executable against `ctrlSocket`. */
export function startDaemonProcess(ctrlSocket: string, intervalSeconds = 0.2): ChildProcess {
  return spawn(
    process.execPath,
    [
      join(root, 'dist', 'daemon', 'cli.js'),
      '--ctrl-socket',
      ctrlSocket,
      '--interval',
      String(intervalSeconds),
      '--status-socket',
      'none',
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
}

/** socat as the same relay: a forking listener that connects to the provider for every client. */
export function startSocat(listenPath: string, providerPath: string): ChildProcess {
  return spawn('socat', [`UNIX-LISTEN:${listenPath},fork,mode=666`, `UNIX-CONNECT:${providerPath}`], {
    stdio: 'ignore',
  });
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

export function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path, () => resolve(socket));
    socket.once('error', reject);
  });
}

export function listen(path: string, onConnection: (socket: Socket) => void): Promise<NetServer> {
  const server = createNetServer(onConnection);
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

/** Echo provider: every byte back, half-close answered. */
export const echo = (socket: Socket) => {
  socket.on('data', (data: Buffer) => socket.write(data));
  socket.on('end', () => socket.end());
  socket.on('error', () => {});
};

/** A graph entry for a link (unix unless overridden) whose both ends are on the host (`_pv_`). */
export function hostLink(
  name: string,
  socket: string,
  target: string,
  overrides: Record<string, unknown> = {},
) {
  return {
    consumer: '_pv_',
    consumer_pid: 0,
    provider: '_pv_',
    provider_pid: 0,
    name,
    type: 'unix',
    socket,
    target,
    ...overrides,
  };
}

/** One connection to each path, each carried through to an echo provider (one byte there and back). */
export async function relayedConnections(paths: string[]): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (const path of paths) {
    const socket = await connect(path);
    await new Promise((resolve) => {
      socket.once('data', resolve);
      socket.write('x');
    });
    sockets.push(socket);
  }
  return sockets;
}
