// The C addon's libFuzzer harnesses: built with clang (AddressSanitizer and UndefinedBehaviorSanitizer) from the
// addon's own pure C files, run for a fixed number of inputs (CI) or a time (`npm run fuzz -- native-…`).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoPath } from '../paths.js';

export interface Harness {
  /** `npm run fuzz -- native-<name>`. */
  name: string;
  description: string;
  /** Harness source and the addon sources it links, from the repository's root. */
  sources: readonly string[];
  /** The kept corpus: regression inputs and seeds, replayed first (never written to). */
  corpus: string;
  ciRuns: number;
}

export const HARNESSES: readonly Harness[] = [
  {
    name: 'native-cmsg',
    description: 'pvx_cmsg_collect_fds on arbitrary control data (ASan, UBSan)',
    sources: ['native/src/cmsg.c', 'test/fuzz/native/fuzz_cmsg.c'],
    corpus: 'test/corpus/native/cmsg',
    ciRuns: 400_000,
  },
  {
    name: 'native-fd-roundtrip',
    description:
      'fds through a real socket pair, both ends with the addon control-data code, MSG_CTRUNC included',
    sources: ['native/src/cmsg.c', 'test/fuzz/native/fuzz_fd_roundtrip.c'],
    corpus: 'test/corpus/native/fd-roundtrip',
    ciRuns: 15_000,
  },
];

/** Builds a harness into `dir`; throws with what to install when clang or its libFuzzer runtime is missing. */
export function buildHarness(harness: Harness, dir: string): string {
  const binary = join(dir, harness.name);
  const built = spawnSync(
    'clang',
    [
      '-g',
      '-O1',
      '-fsanitize=fuzzer,address,undefined',
      '-fno-sanitize-recover=undefined',
      '-D_GNU_SOURCE',
      `-I${repoPath('native/src')}`,
      ...harness.sources.map(repoPath),
      '-o',
      binary,
    ],
    { encoding: 'utf8' },
  );
  if (built.error || built.status !== 0)
    throw new Error(
      `building ${harness.name} failed (clang with libFuzzer is needed: apt-get install clang libclang-rt-14-dev, ` +
        `as .ci/setup does): ${built.error?.message ?? built.stderr}`,
    );
  return binary;
}

export interface HarnessRun {
  status: number | null;
  /** Inputs executed, average inputs per second, and libFuzzer's coverage counters (edges, features). */
  executed: number;
  perSecond: number;
  coverage: number;
  features: number;
  /** libFuzzer's output (the crash report and the reproducer's path on a finding). */
  output: string;
}

/** Runs a built harness: `runs` inputs, or for `seconds`; the kept corpus first. Time caps at `capMs`. */
export function runHarness(
  harness: Harness,
  binary: string,
  options: { seed: number; runs?: number; seconds?: number; capMs: number },
): HarnessRun {
  const work = mkdtempSync(join(tmpdir(), `pvx-${harness.name}-`));
  const fresh = join(work, 'corpus');
  mkdirSync(fresh);
  const args = [
    `-seed=${options.seed}`,
    `-artifact_prefix=${work}/`,
    '-print_final_stats=1',
    options.runs !== undefined ? `-runs=${options.runs}` : `-max_total_time=${options.seconds ?? 60}`,
    fresh,
    repoPath(harness.corpus),
  ];
  const run = spawnSync(binary, args, {
    encoding: 'utf8',
    timeout: options.capMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${run.stdout}${run.stderr}`;
  const stat = (name: string) => Number(new RegExp(`stat::${name}:\\s+(\\d+)`).exec(output)?.[1] ?? 0);
  const lastProgress = [...output.matchAll(/cov: (\d+) ft: (\d+)/g)].at(-1);
  if (run.error) throw new Error(`${harness.name}: ${run.error.message} (safety cap ${options.capMs} ms)`);
  return {
    status: run.status,
    executed: stat('number_of_executed_units'),
    perSecond: stat('average_exec_per_sec'),
    coverage: Number(lastProgress?.[1] ?? 0),
    features: Number(lastProgress?.[2] ?? 0),
    output,
  };
}
