// `npm run fuzz -- <target|all|list> [options]`: runs fuzz targets outside the test suite.
//   --runs N           try N inputs per target (what CI does, with the target's count and the fixed seed)
//   --seconds S        run for S seconds (per target; with `all`, in total); --minutes M likewise
//   --seed S           the seed (default FUZZ_SEED, else the clock); a finding prints the seed and path to replay
//   --path P           with --seed, replays the one input of a finding
//   --coverage         V8 line and branch coverage of each target's sources (runs slices in child processes)
//   --keep             appends inputs that reached a behaviour its corpus lacks to test/corpus/<codec>/<target>.jsonl
//   --summary FILE     writes the summary as JSON (with `all`, default fuzz-summary.json)
// Without --runs or a time, a target runs for 60 s. Progress is printed every slice (at most 10 s).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keepNewBehaviours } from './corpus.js';
import { type Coverage, percent, readCoverage } from './coverage.js';
import { buildHarness, HARNESSES, type Harness, runHarness } from './native/libfuzzer.js';
import { type FuzzTarget, type Json, type RunResult, runTarget } from './target.js';
import { targetNamed, targets } from './targets/index.js';

interface Options {
  which: string;
  runs: number | null;
  seconds: number | null;
  seed: number;
  path: string | null;
  coverage: boolean;
  keep: boolean;
  summary: string | null;
  /** Internal: one slice in a child process, its result as JSON on stdout. */
  child: boolean;
}

const NAMES = [...targets.map((t) => t.name), ...HARNESSES.map((h) => h.name)];
const USAGE = `usage: npm run fuzz -- <${NAMES.join('|')}|all|list> [--runs N | --seconds S | --minutes M] [--seed S [--path P]] [--coverage] [--keep] [--summary FILE]`;

function parseOptions(argv: string[]): Options {
  const [which, ...rest] = argv;
  if (!which) throw new Error(USAGE);
  const envSeed = process.env.FUZZ_SEED;
  const options: Options = {
    which,
    runs: null,
    seconds: null,
    seed: envSeed !== undefined && envSeed !== '' ? Number(envSeed) : Date.now() % 2 ** 31,
    path: null,
    coverage: false,
    keep: false,
    summary: which === 'all' ? 'fuzz-summary.json' : null,
    child: false,
  };
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i] as string;
    const value = () => {
      const next = rest[++i];
      if (next === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      return next;
    };
    const number = () => {
      const parsed = Number(value());
      if (!Number.isFinite(parsed) || parsed < 0) throw new Error(`${flag} needs a number\n${USAGE}`);
      return parsed;
    };
    if (flag === '--runs') options.runs = Math.floor(number());
    else if (flag === '--seconds') options.seconds = number();
    else if (flag === '--minutes') options.seconds = number() * 60;
    else if (flag === '--seed') options.seed = Math.floor(number());
    else if (flag === '--path') options.path = value();
    else if (flag === '--coverage') options.coverage = true;
    else if (flag === '--keep') options.keep = true;
    else if (flag === '--summary') options.summary = value();
    else if (flag === '--child') options.child = true;
    else if (/^\d+$/.test(flag)) options.seconds = Number(flag);
    else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  if (!Number.isSafeInteger(options.seed)) throw new Error(`the seed must be an integer\n${USAGE}`);
  if (options.runs === null && options.seconds === null) options.seconds = 60;
  return options;
}

interface Slice {
  inputs: number;
  ms: number;
  behaviours: [string, Json][];
  failure: string | null;
}

const NO_LIMIT_MS = 24 * 3600 * 1000;

function sliceInProcess(
  target: FuzzTarget,
  seed: number,
  runs: number | null,
  ms: number,
  path: string | null,
): Slice {
  const result: RunResult = runTarget(target, {
    seed,
    runs: runs ?? Number.MAX_SAFE_INTEGER,
    timeLimitMs: runs === null ? ms : NO_LIMIT_MS,
    timeIsFailure: false,
    ...(path ? { path } : {}),
  });
  return {
    inputs: result.inputs,
    ms: result.ms,
    behaviours: [...result.behaviours],
    failure: result.failure,
  };
}

/** One slice in a child process that writes raw V8 coverage into `coverageDir`. */
function sliceInChild(
  target: FuzzTarget,
  seed: number,
  runs: number | null,
  ms: number,
  coverageDir: string,
): Slice {
  const args = [fileURLToPath(import.meta.url), target.name, '--child', '--seed', String(seed)];
  args.push(...(runs === null ? ['--seconds', String(ms / 1000)] : ['--runs', String(runs)]));
  const child = spawnSync(process.execPath, args, {
    env: { ...process.env, NODE_V8_COVERAGE: coverageDir },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const last = child.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as Slice;
  } catch {
    throw new Error(`the fuzz child for ${target.name} failed (status ${child.status}):\n${child.stderr}`);
  }
}

interface TargetSummary {
  target: string;
  seeds: number[];
  inputs: number;
  seconds: number;
  inputsPerSecond: number;
  behaviours: number;
  findings: number;
  coverage?: { lines: string; branches: string; files: Coverage['files'] };
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (options.which === 'list') {
    for (const target of [...targets, ...HARNESSES])
      console.log(`${target.name.padEnd(20)} ${target.description}`);
    return 0;
  }
  const harnesses = HARNESSES.filter((h) => options.which === 'all' || h.name === options.which);
  const chosen =
    options.which === 'all' ? [...targets] : harnesses.length > 0 ? [] : [targetNamed(options.which)];
  if (chosen.some((target) => target === undefined)) throw new Error(USAGE);
  const list = chosen as FuzzTarget[];
  if (list.length === 0) return runNative(harnesses, options);

  if (options.child) {
    const [target] = list as [FuzzTarget];
    const slice = sliceInProcess(
      target,
      options.seed,
      options.runs,
      (options.seconds ?? 0) * 1000,
      options.path,
    );
    console.log(JSON.stringify(slice));
    return 0;
  }

  const totalMs = (options.seconds ?? 0) * 1000;
  const perTargetMs = options.which === 'all' ? totalMs / (list.length + harnesses.length) : totalMs;
  const slices = options.runs === null ? Math.max(1, Math.ceil(perTargetMs / 10_000)) : 1;
  const sliceMs = perTargetMs / slices;
  const coverageRoot = options.coverage ? mkdtempSync(join(tmpdir(), 'pvx-fuzz-coverage-')) : null;
  const summaries = new Map<string, TargetSummary>();
  const behaviours = new Map<string, Map<string, Json>>();
  const started = Date.now();
  let findings = 0;
  console.log(
    `fuzz: ${list.map((t) => t.name).join(', ')}; seed ${options.seed} (FUZZ_SEED or --seed replays)` +
      (options.runs === null
        ? `, ${(perTargetMs / 1000).toFixed(0)} s per target`
        : `, ${options.runs} inputs per target`) +
      (options.coverage ? ', with coverage' : ''),
  );
  try {
    // Round-robin slices, so a long run of `all` shows every target's progress early.
    for (let round = 0; round < slices; round++) {
      for (const target of list) {
        const summary = summaries.get(target.name) ?? {
          target: target.name,
          seeds: [],
          inputs: 0,
          seconds: 0,
          inputsPerSecond: 0,
          behaviours: 0,
          findings: 0,
        };
        summaries.set(target.name, summary);
        if (summary.findings > 0) continue;
        const seed = options.seed + round;
        const coverageDir = coverageRoot && join(coverageRoot, target.name);
        const slice = coverageDir
          ? sliceInChild(target, seed, options.runs, sliceMs, coverageDir)
          : sliceInProcess(target, seed, options.runs, sliceMs, options.path);
        const seen = behaviours.get(target.name) ?? new Map<string, Json>();
        behaviours.set(target.name, seen);
        for (const [label, input] of slice.behaviours) if (!seen.has(label)) seen.set(label, input);
        summary.seeds.push(seed);
        summary.inputs += slice.inputs;
        summary.seconds += slice.ms / 1000;
        summary.inputsPerSecond = Math.round(summary.inputs / summary.seconds);
        summary.behaviours = seen.size;
        let line = `[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${target.name.padEnd(16)} ${String(summary.inputs).padStart(8)} inputs ${String(summary.inputsPerSecond).padStart(7)}/s  ${String(seen.size).padStart(3)} behaviours`;
        if (coverageDir) {
          const coverage = await readCoverage(coverageDir, target.sources);
          summary.coverage = {
            lines: percent(coverage.lines),
            branches: percent(coverage.branches),
            files: coverage.files,
          };
          line += `  lines ${summary.coverage.lines} branches ${summary.coverage.branches}`;
        }
        if (slice.failure) {
          summary.findings++;
          findings++;
          line += '  FINDING';
        }
        console.log(line);
        if (slice.failure) console.log(slice.failure);
      }
    }
  } finally {
    if (coverageRoot) rmSync(coverageRoot, { recursive: true, force: true });
  }

  console.log('\nsummary');
  for (const summary of summaries.values()) {
    const cover = summary.coverage
      ? `  lines ${summary.coverage.lines}, branches ${summary.coverage.branches}`
      : '';
    console.log(
      `  ${summary.target.padEnd(16)} ${summary.inputs} inputs in ${summary.seconds.toFixed(1)} s (${summary.inputsPerSecond}/s), ${summary.behaviours} behaviours, ${summary.findings} findings${cover}`,
    );
    if (summary.coverage) {
      for (const file of summary.coverage.files) {
        if (file.uncoveredLines.length > 0)
          console.log(`      ${file.file}: lines not reached ${file.uncoveredLines.join(',')}`);
      }
    }
  }
  if (options.keep) {
    for (const target of list) {
      const kept = keepNewBehaviours(
        target,
        behaviours.get(target.name) ?? new Map(),
        `new behaviour, seed ${options.seed}`,
      );
      if (kept > 0) console.log(`kept ${kept} inputs in test/corpus/${target.codec}/${target.name}.jsonl`);
    }
  }
  if (options.summary) {
    writeFileSync(
      options.summary,
      `${JSON.stringify({ seed: options.seed, targets: [...summaries.values()] }, null, 1)}\n`,
    );
    console.log(`summary written to ${options.summary}`);
  }
  const nativeStatus =
    harnesses.length > 0
      ? runNative(harnesses, { ...options, seconds: options.runs === null ? perTargetMs / 1000 : null })
      : 0;
  return findings > 0 || nativeStatus !== 0 ? 1 : 0;
}

/** The C harnesses: libFuzzer prints its own progress (inputs, exec/s, cov, ft); a summary line each. */
function runNative(
  harnesses: readonly Harness[],
  options: Pick<Options, 'runs' | 'seconds' | 'seed'>,
): number {
  const dir = mkdtempSync(join(tmpdir(), 'pvx-libfuzzer-'));
  let status = 0;
  try {
    for (const harness of harnesses) {
      const binary = buildHarness(harness, dir);
      const run = runHarness(harness, binary, {
        seed: options.seed,
        ...(options.runs !== null
          ? { runs: options.runs }
          : { seconds: Math.max(1, Math.round(options.seconds ?? 60)) }),
        capMs: NO_LIMIT_MS,
      });
      const verdict = run.status === 0 ? '0 findings' : 'FINDING';
      console.log(
        `  ${harness.name.padEnd(20)} ${run.executed} inputs (${run.perSecond}/s), libFuzzer cov ${run.coverage} ft ${run.features}, ${verdict}`,
      );
      if (run.status !== 0) {
        status = 1;
        console.log(run.output.slice(-6000));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return status;
}

// Exit codes are set, not forced: process.exit() would cut off what is still being written to a pipe (a child's
// result line, for one).
main().then(
  (status) => {
    process.exitCode = status;
  },
  (error: Error) => {
    console.error(error.message);
    process.exitCode = 2;
  },
);
