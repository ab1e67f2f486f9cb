// Paths of the repository from compiled code (dist/test/fuzz/…) and from sources alike.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('the repository root (package.json) was not found');
    dir = parent;
  }
  return dir;
}

export const REPO_ROOT = findRoot();

/** An absolute path from one relative to the repository's root. */
export function repoPath(relative: string): string {
  return join(REPO_ROOT, relative);
}
