// Streams for the HTTP codec tests and the fuzzer (no test-runner imports, so `npm run fuzz` can load it):
// feeding chunkings to a parser and reducing its events to comparable outcomes.
import type { HttpErrorCode, HttpEvent, HttpHeader } from '../../../protocols/http/index.js';

export interface ParsedMessage<Head> {
  head: Head;
  /** The body bytes as latin1, so outcomes compare with toEqual. */
  body: string;
  trailers: HttpHeader[];
  complete: boolean;
}

export interface Outcome<Head> {
  messages: ParsedMessage<Head>[];
  opaque: string;
  error: HttpErrorCode | null;
}

/** Something that takes chunks and returns events: a parser, maybe wrapped to script its switches. */
export interface Feeder<Head> {
  push(chunk: Buffer): HttpEvent<Head>[];
  finish(): HttpEvent<Head>[];
}

/** Folds events into messages. Body slices must be contiguous and non-empty. */
export function collect<Head>(events: readonly HttpEvent<Head>[]): Outcome<Head> {
  const outcome: Outcome<Head> = { messages: [], opaque: '', error: null };
  for (const event of events) {
    const current = outcome.messages.at(-1);
    switch (event.kind) {
      case 'head':
        outcome.messages.push({ head: event.head, body: '', trailers: [], complete: false });
        break;
      case 'body':
        if (event.data.length === 0) throw new Error('an empty body event');
        if (current === undefined || current.complete) throw new Error('body outside a message');
        current.body += event.data.toString('latin1');
        break;
      case 'end':
        if (current === undefined || current.complete) throw new Error('end outside a message');
        current.trailers = event.trailers;
        current.complete = true;
        break;
      case 'opaque':
        outcome.opaque += event.data.toString('latin1');
        break;
      case 'error':
        outcome.error = event.error.code;
        break;
    }
  }
  return outcome;
}

/** Runs one chunking through a fresh feeder; `finish` also signals the end of the stream. */
export function run<Head>(feeder: Feeder<Head>, chunks: readonly Buffer[], finish = false): Outcome<Head> {
  const events: HttpEvent<Head>[] = [];
  for (const chunk of chunks) events.push(...feeder.push(chunk));
  if (finish) events.push(...feeder.finish());
  return collect(events);
}

/** A small seeded PRNG (mulberry32), so every run tries the same chunkings. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cuts bytes at the given offsets. */
export function cut(bytes: Buffer, offsets: readonly number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let from = 0;
  for (const offset of [...offsets, bytes.length]) {
    chunks.push(bytes.subarray(from, offset));
    from = offset;
  }
  return chunks;
}

/** A random chunking: 1 to 8 cuts at random offsets. */
export function randomChunks(bytes: Buffer, random: () => number): Buffer[] {
  const count = 1 + Math.floor(random() * 8);
  const offsets = Array.from({ length: count }, () => Math.floor(random() * (bytes.length + 1))).sort(
    (a, b) => a - b,
  );
  return cut(bytes, offsets);
}
