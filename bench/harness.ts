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
import { cpus, loadavg } from 'node:os';
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

/** The machine's load average (1, 5 and 15 minutes): how much else ran on its cores. */
export function loadAverage(): number[] {
  return loadavg().map((value) => round(value, 2));
}

/** Starts watching the load: the returned function gives it as it was then and as it is now, for the results. */
export function watchLoad(): () => { before: number[]; after: number[] } {
  const before = loadAverage();
  return () => ({ before, after: loadAverage() });
}

/** The median of some measurements and their spread (the lowest and the highest). */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: number[], digits = 1): Spread {
  const sorted = values.filter((value) => !Number.isNaN(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  const middle = Math.floor(sorted.length / 2);
  const median =
    sorted.length % 2 === 1
      ? (sorted[middle] as number)
      : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
  return {
    median: round(median, digits),
    min: round(sorted[0] as number, digits),
    max: round(sorted[sorted.length - 1] as number, digits),
  };
}

/**
 * Per round, `combine(of(a's round), of(b's round))` (a ratio unless told), then their median and spread: the paths
 * of one round saw the same load. Undefined when either path was not measured.
 */
export function paired<Round>(
  rounds: Map<string, Round[]>,
  a: string,
  b: string,
  of: (round: Round) => number,
  combine: (x: number, y: number) => number = (x, y) => x / y,
  digits = 2,
): Spread | undefined {
  const first = rounds.get(a);
  const second = rounds.get(b);
  if (!first || !second) return undefined;
  return spread(
    first.map((round, index) => combine(of(round), of(second[index] as Round))),
    digits,
  );
}

/** Per round, how far `of` of path a is above path b's (e.g. the µs a relay adds), then median and spread. */
export function pairedExcess<Round>(
  rounds: Map<string, Round[]>,
  a: string,
  b: string,
  of: (round: Round) => number,
): Spread | undefined {
  return paired(rounds, a, b, of, (x, y) => x - y, 1);
}

/** "median (min–max)", for tables. */
export function showSpread({ median, min, max }: Spread): string {
  return Number.isNaN(median) ? '–' : `${median} (${min}–${max})`;
}

/**
 * Runs `measure` on every path, round after round, the paths taking turns within each round and each round starting
 * one path further on, so that a change in the machine's load (its cores are shared) or the bench process warming
 * up weighs on all paths alike. Returns each path's results, one per round.
 */
export async function interleaved<Path extends { name: string }, Result>(
  rounds: number,
  paths: Path[],
  measure: (path: Path, round: number) => Promise<Result>,
): Promise<Map<string, Result[]>> {
  const results = new Map(paths.map((path) => [path.name, [] as Result[]]));
  for (let round = 0; round < rounds; round += 1) {
    for (const path of inTurn(paths, round)) results.get(path.name)?.push(await measure(path, round));
  }
  return results;
}

/** The paths of one round in their order: each round starts one path further on. */
export function inTurn<T>(paths: T[], round: number): T[] {
  const first = round % paths.length;
  return [...paths.slice(first), ...paths.slice(0, first)];
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

/** The fields of /proc/PID/stat after the command name (which is in parentheses and may hold spaces). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
}

/** CPU time (user + system) a process has used so far, in ms. */
export function cpuMs(pid: number): number {
  const fields = statFields(pid);
  // utime and stime are the 14th and 15th fields of the line: 12 and 13 after the name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/**
 * CPU time (user + system, ms) a process and all its descendants have used so far: those still running, and those
 * that ended and were waited for (cutime and cstime). For relays that fork per connection (socat).
 */
export function treeCpuMs(pid: number): number {
  let ticks = 0;
  try {
    const fields = statFields(pid);
    // utime, stime, cutime, cstime
    ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  } catch {
    return 0; // gone meanwhile: its time is in its parent's cutime once waited for
  }
  let children: string[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean);
  } catch {}
  return (
    (ticks * 1000) / CLOCK_TICKS_PER_SECOND +
    children.reduce((sum, child) => sum + treeCpuMs(Number(child)), 0)
  );
}

/** socat as the same relay: a forking listener that connects to the provider for every client (`wrapper`: valgrind). */
export function startSocat(listenPath: string, providerPath: string, wrapper: string[] = []): ChildProcess {
  const [file = 'socat', ...args] = [...wrapper, 'socat'];
  return spawn(file, [...args, `UNIX-LISTEN:${listenPath},fork,mode=666`, `UNIX-CONNECT:${providerPath}`], {
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

/**
 * Connections per second to an echo behind `target` (a host path, or what opens a connection elsewhere, e.g. inside
 * a container's namespace), each one connected, one byte echoed, closed.
 */
export async function setupRate(
  target: string | (() => Promise<Socket>),
  connections: number,
): Promise<number> {
  const open = typeof target === 'string' ? () => connect(target) : target;
  const start = nowMs();
  for (let i = 0; i < connections; i += 1) {
    const socket = await open();
    await new Promise((resolve) => {
      socket.once('data', resolve);
      socket.write('x');
    });
    socket.destroy();
  }
  return connections / ((nowMs() - start) / 1000);
}
