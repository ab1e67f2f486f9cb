// Instructions a relay executes per unit of work, counted by callgrind (valgrind): unlike time, the count hardly moves
// with the machine's load, so it compares relays on a shared machine (this one's perf has no hardware counters).
// Each relay runs under callgrind; after a warm-up its counters are zeroed, one workload runs, and the counters are
// dumped: instructions / units. Forking relays (socat) dump before every fork (so a child starts from zero) and
// each child writes its own counts when it exits: all of them are summed. Counted: user-space instructions of the
// relay's every thread, JIT-compiled code included; not counted: the kernel's work in its system calls.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemonProcess, stopProcess } from '../testkit/daemon-process.js';
import { FakeCtrl } from '../testkit/fake-ctrl.js';
import { round } from './harness.js';

/** Whether valgrind can be run here (the benches leave instruction counts out otherwise). */
export const CALLGRIND_AVAILABLE = spawnSync('valgrind', ['--version']).status === 0;

/** A relay started under `wrapper`, ready to serve. */
export interface RelayUnderTest<Endpoints> {
  /** Processes whose counters make up the relay's (their forked children are found by their files). */
  pids: number[];
  /** Its code is compiled by a JIT while it runs (the daemon's V8): warmed up with `jitWarmUp` where given. */
  jit?: boolean;
  endpoints: Endpoints;
  stop(): Promise<void>;
}

export interface Workload<Endpoints> {
  /** What one unit is, e.g. 'per round trip'. */
  unit: string;
  units: number;
  run(endpoints: Endpoints): Promise<unknown>;
  /** Run once before counting (default: run itself). */
  warmUp?(endpoints: Endpoints): Promise<unknown>;
  /** Instead of warmUp for a relay with a JIT: long enough that the count is of its steady state, not of its
   * compiler (a relay that forks per unit would take minutes over it under callgrind). */
  jitWarmUp?(endpoints: Endpoints): Promise<unknown>;
}

/** Instructions per unit of each workload (millions where `scale` says so). */
export type InstructionCounts = Record<string, number>;

/** Zeroes (-z) or dumps (-d) the counters of `pids`. */
export function callgrind(pids: number[], command: '-z' | '-d'): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('callgrind_control', [command, ...pids.map(String)], (error) =>
      error ? reject(error) : resolve(),
    );
  });
}

function instructionsIn(file: string): number {
  const text = readFileSync(file, 'utf8');
  const match = /^(?:summary|totals): (\d+)/m.exec(text);
  return match ? Number(match[1]) : 0;
}

function liveChildren(pid: number): number {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).length;
  } catch {
    return 0;
  }
}

async function settled(pids: number[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (pids.some((pid) => liveChildren(pid) > 0)) {
    if (Date.now() > deadline) throw new Error('the relay still has children a minute after the workload');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The valgrind command line that `start` puts in front of the relay's, writing into `outDir`. */
export function callgrindWrapper(outDir: string): string[] {
  return [
    'valgrind',
    '--quiet',
    '--tool=callgrind',
    `--callgrind-out-file=${outDir}/cg.%p`,
    '--dump-before=_Fork',
    '--dump-line=no',
    '--dump-instr=no',
  ];
}

/**
 * For each relay: started under callgrind (its files in `dir`/callgrind-NAME), every workload warmed up, then counted
 * once; instructions per unit. Empty when valgrind is missing.
 */
export async function instructionCounts<Endpoints>(
  dir: string,
  relays: Record<string, (wrapper: string[]) => Promise<RelayUnderTest<Endpoints>>>,
  workloads: Workload<Endpoints>[],
): Promise<Record<string, InstructionCounts>> {
  if (!CALLGRIND_AVAILABLE) return {};
  const counts: Record<string, InstructionCounts> = {};
  for (const [name, start] of Object.entries(relays)) {
    const outDir = join(dir, `callgrind-${name.replace(/\W+/g, '-')}`);
    mkdirSync(outDir, { recursive: true });
    const relay = await start(callgrindWrapper(outDir));
    try {
      for (const workload of workloads) {
        const warmUp = (relay.jit && workload.jitWarmUp) || workload.warmUp || workload.run;
        await warmUp(relay.endpoints);
      }
      counts[name] = {};
      for (const workload of workloads) {
        await settled(relay.pids);
        const before = new Set(readdirSync(outDir));
        await callgrind(relay.pids, '-z');
        await workload.run(relay.endpoints);
        await settled(relay.pids);
        await callgrind(relay.pids, '-d');
        const files = readdirSync(outDir).filter((file) => !before.has(file));
        const total = files.reduce((sum, file) => sum + instructionsIn(join(outDir, file)), 0);
        (counts[name] as InstructionCounts)[workload.unit] = round(total / workload.units, 0);
      }
    } finally {
      await relay.stop();
    }
  }
  return counts;
}

/** Whether `path` exists yet: relays under callgrind take a while to start. */
export async function whenExisting(paths: string[], what: string): Promise<void> {
  const deadline = Date.now() + 180_000;
  while (!paths.every((path) => existsSync(path))) {
    if (Date.now() > deadline) throw new Error(`${what} did not start under callgrind within 3 minutes`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The daemon started under `wrapper`, serving `links` from a pv-ctrl stand-in at `ctrlPath`, once `paths` exist. */
export async function daemonUnderCallgrind(
  wrapper: string[],
  ctrlPath: string,
  links: unknown[],
  paths: string[],
): Promise<{ pid: number; stop: () => Promise<void> }> {
  const ctrl = await FakeCtrl.serving(ctrlPath, links);
  // A poll in the middle of a count would be counted: one a minute.
  const daemon = startDaemonProcess(ctrl.socketPath, 60, undefined, wrapper);
  await whenExisting(paths, 'pv-xconnect');
  return {
    pid: daemon.pid as number,
    stop: async () => {
      await stopProcess(daemon);
      await ctrl.stop();
    },
  };
}
