// Runs one check of a stack inside its container: retried until it passes or its timeout is spent (links come
// up within a poll interval, so a first attempt may legitimately fail), and judged against its expectations.
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

export type CheckExec = (check: Check, timeoutSeconds: number) => Promise<ExecResult>;

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
      return `output does not match /${expectation.pattern.source}/`;
    }
  }
  return null;
}

export async function runCheck(check: Check, exec: CheckExec): Promise<CheckResult> {
  const started = Date.now();
  const deadline = started + check.timeout * 1000;
  let attempts = 0;
  for (;;) {
    attempts += 1;
    const remaining = Math.max(1, (deadline - Date.now()) / 1000);
    let last: ExecResult;
    try {
      last = await exec(check, remaining);
    } catch (error) {
      last = { exitCode: -1, stdout: '', stderr: (error as Error).message };
    }
    const reason = judge(check, last);
    if (reason === null || Date.now() + RETRY_PAUSE_MS >= deadline) {
      return { check, passed: reason === null, attempts, ms: Date.now() - started, reason, last };
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
  }
}
