// Paths of the repository from compiled code (dist/test/fuzz/…) and from sources alike.
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../sim/paths.js';

export const REPO_ROOT = PACKAGE_ROOT;

/** An absolute path from one relative to the repository's root. */
export function repoPath(relative: string): string {
  return join(REPO_ROOT, relative);
}
