import { expect, it } from 'vitest';
import { runDifferential } from '../../fuzz/http.js';

it('agrees with llhttp on every message it accepts (seeded differential run)', () => {
  const stats = runDifferential({ seed: 20240601, budgetMs: 20_000, maxInputs: 120_000 });
  console.log(`differential: ${JSON.stringify(stats)}`);
  // The generator must keep producing accepted messages, or the comparison proves nothing.
  expect(stats.compared).toBeGreaterThan(stats.inputs / 10);
}, 60_000);
