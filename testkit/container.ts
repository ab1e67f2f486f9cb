// A lightweight "container" for tests that need a process in other namespaces (root only):
//
//   unshare --mount --propagation private --pid --fork --kill-child sh -c <init script>
//
// (without --pid when `sharedPid`: such a container sees every host process in its /proc, as a container that
// shares the host's pid namespace does; the attacks on magic links need one.)
//
// The init (pid 1 of a new pid namespace, in a private copy of the host's mount namespace) mounts its own /proc,
// a private tmpfs on /run (and optionally on /tmp), runs the caller's setup commands, prints one ready line with
// its host-visible pid, then waits on its stdin. Everything else (/usr, /etc, /tmp unless private) is the host's,
// so host binaries (sh, socat, node, stat) run inside unchanged.
//
// Lifetime: stop() kills the init (SIGKILL from the parent namespace tears the whole pid namespace down) and
// every process started through spawn()/exec(). Should the test process die instead, the init sees EOF on its
// stdin and exits, and --kill-child makes unshare take it down too: nothing outlives the test.
import { type ChildProcess, spawn as spawnProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';

export interface ContainerOptions {
  /** Shell commands run inside by the init before it reports ready (`set -e`: a failing command fails the
   * start). Runs after the private mounts, e.g. `mkdir -p /tmp/a && ln -s /tmp/a /run/evil`. Their stdout goes
   * to stderr. */
  setup?: string;
  /** Give the container its own empty tmpfs on /tmp too (default: /tmp is the host's). */
  privateTmp?: boolean;
  /** Give the container its own copy of the host's /etc (default: /etc is the host's). */
  privateEtc?: boolean;
  /** Stay in the host's pid namespace: the container's /proc then shows (and leads to) host processes. */
  sharedPid?: boolean;
  /** How long to wait for the ready line before giving up (a guard against a hung setup). Default 10 s. */
  startTimeoutMs?: number;
}

export interface ExecOptions {
  /** Written to the command's stdin, which is then closed. Default: stdin closed at once. */
  input?: string | Buffer;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit code, or null when killed by a signal (see `signal`). */
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Container {
  /** Host pid of the init inside the namespaces (what the daemon gets as consumer_pid / provider_pid). */
  readonly pid: number;
  /** Runs cmd inside (nsenter -t pid -m -p) to completion. */
  exec(cmd: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts cmd inside (nsenter -t pid -m -p); stop() kills it if it still runs. */
  spawn(cmd: string[]): ChildProcess;
  /** Kills the container and everything started in it; resolves once all of it has exited. Idempotent. */
  stop(): Promise<void>;
}

const READY = 'pvx-container-ready';

function initScript(opts: ContainerOptions): string {
  return [
    'set -e',
    // Read by the shell itself, through the host's /proc (not remounted yet): the first field is our host pid.
    'read -r self_stat < /proc/self/stat',
    'mount -t proc proc /proc',
    'mount -t tmpfs -o mode=0755 pvx-run /run',
    opts.privateTmp ? 'mount -t tmpfs -o mode=1777 pvx-tmp /tmp' : '',
    opts.privateEtc ? 'mkdir /run/.etc && cp -a /etc/. /run/.etc/ && mount --bind /run/.etc /etc' : '',
    `{\n${opts.setup ?? ':'}\n} >&2`,
    `echo "${READY} \${self_stat%% *}"`,
    // Stay alive until stdin closes (stop(), or the test process died).
    'while read -r _; do :; done',
  ].join('\n');
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function nsenterArgs(pid: number, cmd: string[]): string[] {
  return ['-t', String(pid), '-m', '-p', '--', ...cmd];
}

/** Starts a container and resolves once its setup has run and it is ready. */
export async function startContainer(opts: ContainerOptions = {}): Promise<Container> {
  const init = spawnProcess(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      ...(opts.sharedPid ? [] : ['--pid']),
      '--fork',
      '--kill-child',
      'sh',
      '-c',
      initScript(opts),
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const pid = await waitReady(init, opts.startTimeoutMs ?? 10_000);
  const started = new Set<ChildProcess>();
  let stopping: Promise<void> | undefined;

  function spawn(cmd: string[]): ChildProcess {
    if (stopping) throw new Error('container stopped');
    const child = spawnProcess('nsenter', nsenterArgs(pid, cmd), { stdio: 'pipe' });
    started.add(child);
    child.once('exit', () => started.delete(child));
    return child;
  }

  async function exec(cmd: string[], execOpts: ExecOptions = {}): Promise<ExecResult> {
    const child = spawn(cmd);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    // The command may exit without reading its input: that EPIPE is not the caller's error.
    child.stdin?.on('error', () => {});
    child.stdin?.end(execOpts.input);
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      // 'close' (not 'exit'): all output has been read.
      child.once('close', (code, signal) =>
        resolve({
          stdout: Buffer.concat(stdout).toString(),
          stderr: Buffer.concat(stderr).toString(),
          code,
          signal,
        }),
      );
    });
  }

  function stop(): Promise<void> {
    stopping ??= (async () => {
      for (const child of started) child.kill('SIGKILL');
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      init.stdin?.end();
      await Promise.all([exited(init), ...[...started].map(exited)]);
    })();
    return stopping;
  }

  return { pid, exec, spawn, stop };
}

/** Resolves with the pid from the init's ready line; rejects (and kills it) if it exits or hangs first. */
function waitReady(init: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const fail = (why: string) => {
      clearTimeout(timer);
      init.kill('SIGKILL');
      reject(new Error(`container did not start: ${why}\n${stderr}`));
    };
    const timer = setTimeout(() => fail(`no ready line within ${timeoutMs} ms`), timeoutMs);
    init.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    init.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = new RegExp(`^${READY} (\\d+)\\n`, 'm').exec(stdout);
      if (!match?.[1]) return;
      clearTimeout(timer);
      init.removeAllListeners('exit');
      resolve(Number(match[1]));
    });
    init.once('error', (error) => fail(error.message));
    init.once('exit', (code, signal) => fail(`exited (${signal ?? code})`));
  });
}

/**
 * A host process (`sleep`) that gets exactly `pid`, freed by a container that died: pid reuse, as it happens
 * when pid_max is small. Through /proc/sys/kernel/ns_last_pid; other processes may take the pid first, so it is
 * retried. Kill it with `killed()`.
 */
export async function hostProcessWithPid(pid: number): Promise<ChildProcess> {
  for (let attempt = 0; attempt < 200; attempt++) {
    writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
    const child = spawnProcess('sleep', ['1000'], { stdio: 'ignore' });
    if (child.pid === pid) return child;
    await killed(child);
  }
  throw new Error(`could not hand pid ${pid} to a host process`);
}

/** Kills a child process and resolves once it has exited. */
export async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exit;
}
