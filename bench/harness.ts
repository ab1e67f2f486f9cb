// Shared pieces of the benchmarks: timing, percentiles, process CPU and memory, result files, socat as a baseline,
// plain net peers and host links. What benches share with the tests (the daemon as a process, a pv-ctrl stand-in,
// D-Bus and Wayland peers, waiting) is in testkit/.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import {
  createConnection,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { PACKAGE_ROOT } from '../native/package-root.js';
import { type GraphEntry, graphEntry } from '../testkit/mesh.js';

/** USER_HZ of /proc/<pid>/stat: 100 on Linux for all architectures this runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

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
  const file = join(PACKAGE_ROOT, 'bench', 'results', `${name}.json`);
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

/** CPU time (user + system) a process has used so far, in ms. */
export function cpuMs(pid: number): number {
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are 12 and 13.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** socat as the same relay: a forking listener that connects to the provider for every client. */
export function startSocat(listenPath: string, providerPath: string): ChildProcess {
  return spawn('socat', [`UNIX-LISTEN:${listenPath},fork,mode=666`, `UNIX-CONNECT:${providerPath}`], {
    stdio: 'ignore',
  });
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
export function hostLink(name: string, socket: string, target: string, overrides: Partial<GraphEntry> = {}) {
  return graphEntry('unix', null, null, { name, socket, target, ...overrides });
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

/** Connections per second to an echo behind `path`, each one connected, one byte echoed, closed. */
export async function setupRate(path: string, connections: number): Promise<number> {
  const start = nowMs();
  for (let i = 0; i < connections; i += 1) {
    const socket = await connect(path);
    await new Promise((resolve) => {
      socket.once('data', resolve);
      socket.write('x');
    });
    socket.destroy();
  }
  return connections / ((nowMs() - start) / 1000);
}
