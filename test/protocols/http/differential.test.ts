import { expect, it } from 'vitest';
import { runDifferential } from '../../fuzz/http.js';

it('agrees with llhttp on every message it accepts (40,000 inputs from a fixed seed; the time is only a safety cap)', () => {
  const stats = runDifferential({ seed: 20240601, inputs: 40_000, capMs: 50_000 });
  console.log(`differential: ${JSON.stringify(stats)}`);
  // The generator must keep producing accepted messages, or the comparison proves nothing.
  expect(stats.compared).toBeGreaterThan(stats.inputs / 10);
}, 60_000);
