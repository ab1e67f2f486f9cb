// What a fuzz target is, and how one runs: a fixed number of inputs from a seed (CI), or for a while (a long run).
// Every target is a fast-check property, so a finding comes back shrunk, with the seed and path that replay it.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';

/** Input values are JSON (bytes as latin1 strings), so a finding can be printed and kept in a corpus as it is. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface FuzzTarget<Input extends Json = Json> {
  /** `codec-part`, e.g. `dbus-sasl`: the name `npm run fuzz -- NAME` takes. */
  readonly name: string;
  /** The folder of its kept corpus: test/corpus/<codec>/<name>.jsonl. */
  readonly codec: string;
  /** What it checks, in one line. */
  readonly description: string;
  /** The source files (from the repository's root) whose coverage the target reports. */
  readonly sources: readonly string[];
  /** Inputs a CI run tries from the fixed seed. */
  readonly ciRuns: number;
  /** The fewest distinct behaviours a CI run must reach: a generator that stops producing variety fails. */
  readonly minBehaviours: number;
  /** Generated inputs: grammar derivations, mutations, chunkings. */
  arbitrary(): fc.Arbitrary<Input>;
  /**
   * Runs the codec on one input against its oracles. Throws on a finding; otherwise returns the behaviour the
   * input reached, a short label (`accepted`, `refused:BAD_PADDING`…) that the corpus keeps one input for.
   */
  check(input: Input): string;
}

/** Longer inputs and messages of a finding's report go to a file rather than the terminal. */
const MAX_SHOWN = 4000;

/** The seed CI uses for every target. */
export const CI_SEED = 20240601;

export interface RunOptions {
  seed: number;
  /** Inputs to try (CI: the target's ciRuns). */
  runs: number;
  /** Stops after this long: a failure when `timeIsFailure` (a CI safety cap), else the end of a timed run. */
  timeLimitMs: number;
  timeIsFailure: boolean;
  /** Replays one input of a run: fast-check's path from a finding's report. */
  path?: string;
}

export interface RunResult {
  target: string;
  seed: number;
  inputs: number;
  ms: number;
  /** The first input seen for each behaviour, in order of discovery. */
  behaviours: Map<string, Json>;
  /** The report of a finding (shrunk input, seed and path), or of the time cap when it is a failure. */
  failure: string | null;
}

export function runTarget(target: FuzzTarget, options: RunOptions): RunResult {
  const behaviours = new Map<string, Json>();
  let inputs = 0;
  const started = performance.now();
  const details = fc.check(
    fc.property(target.arbitrary(), (input) => {
      inputs++;
      const behaviour = target.check(input);
      if (!behaviours.has(behaviour)) behaviours.set(behaviour, input);
    }),
    {
      seed: options.seed,
      numRuns: options.runs,
      interruptAfterTimeLimit: options.timeLimitMs,
      markInterruptAsFailure: options.timeIsFailure,
      ...(options.path ? { path: options.path } : {}),
    },
  );
  const ms = performance.now() - started;
  let failure: string | null = null;
  if (details.failed) failure = report(target, details, options);
  return { target: target.name, seed: options.seed, inputs, ms, behaviours, failure };
}

function report(target: FuzzTarget, details: fc.RunDetails<[Json]>, options: RunOptions): string {
  if (details.interrupted && details.counterexample === null) {
    return (
      `${target.name}: hit the ${options.timeLimitMs} ms safety cap after ${details.numRuns} of ` +
      `${options.runs} inputs (seed ${options.seed}): the machine is too slow or the target got slower`
    );
  }
  const [input] = details.counterexample ?? [null];
  const error = details.errorInstance;
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  let line = JSON.stringify({ note: 'regression: <what was fixed>', input });
  if (line.length > MAX_SHOWN) {
    // An input at a size limit does not belong on a terminal: it goes to a file.
    const file = join(mkdtempSync(join(tmpdir(), 'pvx-finding-')), `${target.name}.jsonl`);
    writeFileSync(file, `${line}\n`);
    line = `(${line.length} characters, written to ${file})`;
  }
  return [
    `${target.name}: finding after ${details.numRuns} inputs, shrunk ${details.numShrinks} times`,
    `seed ${details.seed}, path "${details.counterexamplePath}"`,
    `replay: npm run fuzz -- ${target.name} --seed ${details.seed} --path ${details.counterexamplePath}`,
    `shrunk input (a corpus line for test/corpus/${target.codec}/${target.name}.jsonl):`,
    line,
    message.length > MAX_SHOWN ? `${message.slice(0, MAX_SHOWN)}…` : message,
  ].join('\n');
}
