// This process's fd table, filled up on purpose: how tests make the kernel refuse to install received fds.
import { execFileSync } from 'node:child_process';
import { closeFd, dupFd } from '../native/fds.js';
import { openFdCount } from './mesh.js';

/**
 * Lowers this process's RLIMIT_NOFILE (prlimit on our own pid) so that the fd table can be filled up.
 * Tests fill it synchronously right before the operation that must fail: other code in this process
 * (the test runner) may close fds at any time, so a table filled earlier may not stay full.
 */
export function lowerFdLimit() {
  const pid = String(process.pid);
  const [soft, hard] = execFileSync('prlimit', [
    '--pid',
    pid,
    '--nofile',
    '--raw',
    '--noheadings',
    '-o',
    'SOFT,HARD',
  ])
    .toString()
    .trim()
    .split(/\s+/);
  execFileSync('prlimit', ['--pid', pid, `--nofile=${openFdCount() + 16}:${hard}`]);
  const filler: number[] = [];
  const release = () => {
    for (const fd of filler.splice(0)) closeFd(fd);
  };
  return {
    /** Takes every free fd but `free` of them. */
    fill(free: number): void {
      for (;;) {
        try {
          filler.push(dupFd(0));
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EMFILE') throw error;
          break;
        }
      }
      for (const fd of filler.splice(0, free)) closeFd(fd);
    },
    release,
    restore(): void {
      release();
      execFileSync('prlimit', ['--pid', pid, `--nofile=${soft}:${hard}`]);
    },
  };
}
