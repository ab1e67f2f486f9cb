// Real fds for the targets whose filters own, forward and close them: opened on /dev/null, and checked afterwards
// (an fd the filter claims to have closed must be closed, one it forwarded must still be open).
import { closeSync, fstatSync, openSync } from 'node:fs';

export function openFds(count: number): number[] {
  return Array.from({ length: count }, () => openSync('/dev/null', 'r'));
}

export function isOpen(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

/** Every fd of `given` must be either forwarded (and open: it is closed here) or closed by the code under test. */
export function checkFdsAccountedFor(given: readonly number[], forwarded: readonly number[]): string | null {
  const sent = new Set(forwarded);
  if (sent.size !== forwarded.length) return 'an fd was forwarded twice';
  for (const fd of forwarded) if (!given.includes(fd)) return `fd ${fd} was forwarded but never given`;
  let problem: string | null = null;
  for (const fd of given) {
    const open = isOpen(fd);
    if (sent.has(fd) && !open) problem ??= `forwarded fd ${fd} was closed`;
    if (!sent.has(fd) && open) problem ??= `fd ${fd} was neither forwarded nor closed (leaked)`;
    if (open) closeSync(fd);
  }
  return problem;
}
