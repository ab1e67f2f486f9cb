// The HTTP smuggling corpus (test/corpus/http/*.json) as test data: its cases and their bytes.
import { readdirSync, readFileSync } from 'node:fs';
import type { HttpHeader } from '../protocols/http/index.js';

type InputPart = string | { repeat: string; times: number };

export interface CorpusCase {
  file: string;
  name: string;
  why: string;
  /** Latin1 text, or parts to concatenate (a part may repeat a string, for the size limits). */
  input: string | InputPart[];
  outcome: 'accept' | 'reject';
  /** For `reject`: the expected error code. */
  code?: string;
  /** For `accept`: how many complete messages (default 1), and what the first one must be. */
  messages?: number;
  method?: string;
  target?: string;
  body?: string;
  headers?: HttpHeader[];
  trailers?: HttpHeader[];
}

const directory = new URL('../test/corpus/http/', import.meta.url);

export function corpusCases(): CorpusCase[] {
  return readdirSync(directory)
    .filter((file) => file.endsWith('.json'))
    .flatMap((file) =>
      (JSON.parse(readFileSync(new URL(file, directory), 'utf8')) as Omit<CorpusCase, 'file'>[]).map(
        (entry) => ({ file, ...entry }),
      ),
    );
}

export function corpusBytes(input: CorpusCase['input']): Buffer {
  const parts = typeof input === 'string' ? [input] : input;
  return Buffer.from(
    parts.map((part) => (typeof part === 'string' ? part : part.repeat.repeat(part.times))).join(''),
    'latin1',
  );
}
