import { expect, it } from 'vitest';
import { fuzz } from '../../fuzz/dbus.js';

it('survives a seeded 10-second fuzz run of the SASL decoders, unmarshal and the framer', () => {
  const log: string[] = [];
  // fuzz() throws on any finding; the count shows it really ran.
  const tried = fuzz(10_000, (line) => log.push(line), 20240601);
  expect(log).toEqual(['dbus fuzz: seed 20240601, 10000 ms']);
  expect(tried).toBeGreaterThan(0);
});
