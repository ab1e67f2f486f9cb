// Every fuzz target, as CI runs it: its kept corpus replayed (each input must reach the behaviour recorded), then a
// fixed number of generated inputs from the fixed seed. Time is only a safety cap, which fails the test when hit.
import { describe, expect, it } from 'vitest';
import { readCorpus } from './corpus.js';
import { CI_SEED, runTarget } from './target.js';
import { targets } from './targets/index.js';

/** Far above what any target needs here (2 to 6 s); hitting it means something got much slower. */
const SAFETY_CAP_MS = 90_000;

describe.each(targets.map((target) => [target.name, target] as const))('fuzz target %s', (_, target) => {
  it('replays its kept corpus, each input reaching the behaviour recorded', () => {
    const corpus = readCorpus(target);
    for (const entry of corpus) {
      expect({ input: entry.input, behaviour: target.check(entry.input) }).toEqual({
        input: entry.input,
        behaviour: entry.behaviour,
      });
    }
  });

  it(
    `survives ${target.ciRuns} inputs from seed ${CI_SEED}`,
    () => {
      const result = runTarget(target, {
        seed: CI_SEED,
        runs: target.ciRuns,
        timeLimitMs: SAFETY_CAP_MS,
        timeIsFailure: true,
      });
      if (result.failure) throw new Error(result.failure);
      expect(result.inputs).toBe(target.ciRuns);
      // The generator still reaches the variety of behaviours it reached when its floor was set.
      expect(result.behaviours.size).toBeGreaterThanOrEqual(target.minBehaviours);
    },
    SAFETY_CAP_MS + 30_000,
  );
});
