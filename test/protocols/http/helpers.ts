// Shared by the HTTP codec tests: parsing a stream in many chunkings and checking they all agree.
import { expect } from 'vitest';
import { cut, type Feeder, type Outcome, prng, randomChunks, run } from './streams.js';

/**
 * Chunkings to try: whole, byte by byte, split at every point (short inputs) or at 64 sampled points,
 * and 16 random multi-cut chunkings. Each chunking gets a fresh copy, so no test shares buffers.
 */
export function chunkings(bytes: Buffer): Buffer[][] {
  const all: Buffer[][] = [
    [bytes],
    cut(
      bytes,
      Array.from({ length: Math.max(0, bytes.length - 1) }, (_, i) => i + 1),
    ),
  ];
  const random = prng(bytes.length);
  const points =
    bytes.length <= 2048
      ? Array.from({ length: bytes.length + 1 }, (_, i) => i)
      : Array.from({ length: 64 }, () => Math.floor(random() * (bytes.length + 1)));
  for (const point of points) all.push(cut(bytes, [point]));
  for (let i = 0; i < 16; i++) all.push(randomChunks(bytes, random));
  return all.map((chunks) => chunks.map((chunk) => Buffer.from(chunk)));
}

/**
 * Parses `bytes` in every chunking of `chunkings()` and checks that all give the same outcome as the whole;
 * returns that outcome.
 */
export function parseEveryWay<Head>(
  newFeeder: () => Feeder<Head>,
  bytes: Buffer | string,
  finish = false,
): Outcome<Head> {
  const input = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
  const [whole, ...others] = chunkings(input);
  const expected = run(newFeeder(), whole ?? [], finish);
  for (const chunks of others) {
    const outcome = run(newFeeder(), chunks, finish);
    if (JSON.stringify(outcome) !== JSON.stringify(expected)) {
      const chunking = JSON.stringify(chunks.map((chunk) => chunk.toString('latin1'))).slice(0, 300);
      expect(outcome, `chunked as ${chunking}`).toEqual(expected);
    }
  }
  return expected;
}
