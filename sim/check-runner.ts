// Runs one check of a stack: a command inside its container, or a look at the container's console, retried until
// it passes or its timeout is spent (links come up within a poll interval, so a first attempt may legitimately
// fail), and judged against its expectations. A check with `daemon_fds` also waits for pv-xconnect's open fds to
// come back to their count from before the command.
import type { ExecResult } from './runtime.js';
import type { Check } from './stack.js';

export interface CheckResult {
  check: Check;
  passed: boolean;
  attempts: number;
  ms: number;
  /** Why the last attempt failed (null when passed). */
  reason: string | null;
  last: ExecResult;
}

/** What a check needs from the running stack. */
export interface CheckTarget {
  exec(check: Check, timeoutSeconds: number): Promise<ExecResult>;
  /** What the container's program has printed so far. */
  console(container: string): Promise<string>;
  /** pv-xconnect's open file descriptors, or null when it does not run. */
  daemonFds(): number | null;
}

const RETRY_PAUSE_MS = 300;

/** null when the result meets every expectation, else why not. */
export function judge(check: Check, result: ExecResult): string | null {
  if (result.exitCode !== check.exit) {
    return result.exitCode === 124 ? 'timed out' : `exit code ${result.exitCode}, expected ${check.exit}`;
  }
  for (const expectation of check.expect) {
    if (expectation.kind === 'stdout') {
      const stdout = result.stdout.replace(/\n+$/, '');
      if (stdout !== expectation.text) {
        return `stdout ${JSON.stringify(stdout)}, expected ${JSON.stringify(expectation.text)}`;
      }
    } else if (!expectation.pattern.test(`${result.stdout}${result.stderr}`)) {
      return `${check.console ? 'console' : 'output'} does not match /${expectation.pattern.source}/`;
    }
  }
  return null;
}

export async function runCheck(check: Check, target: CheckTarget): Promise<CheckResult> {
  const started = Date.now();
  const deadline = started + check.timeout * 1000;
  const fdsBefore = check.daemonFds ? target.daemonFds() : null;
  let attempts = 0;
  for (;;) {
    attempts += 1;
    const remaining = Math.max(1, (deadline - Date.now()) / 1000);
    let last: ExecResult;
    try {
      last = check.console
        ? { exitCode: 0, stdout: await target.console(check.container), stderr: '' }
        : await target.exec(check, remaining);
    } catch (error) {
      last = { exitCode: -1, stdout: '', stderr: (error as Error).message };
    }
    let reason = judge(check, last);
    if (reason === null && check.daemonFds) {
      reason = await fdsBack(target, fdsBefore, check.daemonFds.slack, deadline);
    }
    if (reason === null || Date.now() + RETRY_PAUSE_MS >= deadline) {
      return { check, passed: reason === null, attempts, ms: Date.now() - started, reason, last };
    }
    await sleep(RETRY_PAUSE_MS);
  }
}

/** Waits (until `deadline`) for pv-xconnect's fd count to be at most `before + slack`; null once it is. */
async function fdsBack(
  target: CheckTarget,
  before: number | null,
  slack: number,
  deadline: number,
): Promise<string | null> {
  if (before === null) return 'pv-xconnect was not running before the command';
  for (;;) {
    const now = target.daemonFds();
    if (now === null) return 'pv-xconnect is not running';
    if (now <= before + slack) return null;
    if (Date.now() + 100 >= deadline) {
      return `pv-xconnect holds ${now} fds, ${before} before the command (at most ${before + slack} expected)`;
    }
    await sleep(100);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
