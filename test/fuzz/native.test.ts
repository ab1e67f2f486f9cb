// The C addon's libFuzzer harnesses as CI runs them: built with AddressSanitizer and UBSan, the kept corpus replayed,
// then a fixed number of inputs from a fixed seed. Needs clang and libclang-rt (installed by .ci/setup).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildHarness, HARNESSES, runHarness } from './native/libfuzzer.js';

const SAFETY_CAP_MS = 120_000;

describe.each(HARNESSES.map((harness) => [harness.name, harness] as const))('libFuzzer %s', (_, harness) => {
  it(
    `replays its corpus and runs ${harness.ciRuns} inputs from seed 1 without a sanitizer report`,
    () => {
      const binary = buildHarness(harness, mkdtempSync(join(tmpdir(), 'pvx-libfuzzer-')));
      const run = runHarness(harness, binary, { seed: 1, runs: harness.ciRuns, capMs: SAFETY_CAP_MS });
      if (run.status !== 0) throw new Error(`${harness.name} found something:\n${run.output.slice(-6000)}`);
      expect(run.executed).toBe(harness.ciRuns);
      expect(run.coverage).toBeGreaterThan(0);
    },
    SAFETY_CAP_MS + 60_000,
  );
});
