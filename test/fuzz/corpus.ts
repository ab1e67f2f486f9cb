// Kept corpora: test/corpus/<codec>/<target>.jsonl, one JSON object per line:
//   {"behaviour": "refused:BAD_PADDING", "note": "why it is kept", "input": …}
// Every test run replays them: each input must pass the target's oracles and reach the behaviour recorded.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { repoPath } from './paths.js';
import type { FuzzTarget, Json } from './target.js';

export interface CorpusEntry {
  behaviour: string;
  note: string;
  input: Json;
}

export function corpusPath(target: Pick<FuzzTarget, 'codec' | 'name'>): string {
  return repoPath(`test/corpus/${target.codec}/${target.name}.jsonl`);
}

export function readCorpus(target: Pick<FuzzTarget, 'codec' | 'name'>): CorpusEntry[] {
  const path = corpusPath(target);
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, index) => {
      try {
        return JSON.parse(line) as CorpusEntry;
      } catch (error) {
        throw new Error(`${path}:${index + 1}: ${(error as Error).message}`);
      }
    });
}

/** Inputs kept for a behaviour stay small: one at a size limit is found again by its target in every run. */
const MAX_KEPT_CHARS = 4096;

/** Appends entries for behaviours the corpus has no input for yet (small inputs only); returns how many were added. */
export function keepNewBehaviours(
  target: FuzzTarget,
  behaviours: ReadonlyMap<string, Json>,
  note: string,
): number {
  const known = new Set(readCorpus(target).map((entry) => entry.behaviour));
  const lines: string[] = [];
  for (const [behaviour, input] of behaviours) {
    if (known.has(behaviour)) continue;
    const line = JSON.stringify({ behaviour, note, input });
    if (line.length <= MAX_KEPT_CHARS) lines.push(line);
  }
  if (lines.length === 0) return 0;
  const path = corpusPath(target);
  mkdirSync(dirname(path), { recursive: true });
  appendFileSync(path, `${lines.join('\n')}\n`);
  return lines.length;
}
