// pv-xconnect (or any command) as a separate process, the way a service manager runs it, and the service
// manager's notification socket: a real AF_UNIX datagram socket (socat UNIX-RECV / ABSTRACT-RECV) that collects
// what the daemon sends. Benches run the built daemon of this checkout the same way (startDaemonProcess).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { DAEMON_CLI } from '../sim/paths.js';
import { eventually } from './mesh.js';

export interface DaemonProcess {
  child: ChildProcess;
  /** Exit code (null: killed by a signal). */
  exited: Promise<number | null>;
  output(): string;
}

/** Runs `command` (e.g. [node, cli, ...flags]) with `env` added to this process's environment. */
export function runDaemon(command: string[], env: Record<string, string> = {}): DaemonProcess {
  const [file, ...args] = command as [string, ...string[]];
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let output = '';
  child.stdout?.on('data', (part: Buffer) => {
    output += part.toString();
  });
  child.stderr?.on('data', (part: Buffer) => {
    output += part.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

/** Runs a command to its end: exit code (1 when killed or not started), stdout, stderr. */
export function runToEnd(
  file: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { ...options, maxBuffer: 32 << 20 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

export interface NotifySocket {
  /** What goes into NOTIFY_SOCKET: a path, or "@name" for an abstract socket. */
  address: string;
  /** Everything received so far: the datagrams in order, back to back. */
  received(): string;
  close(): Promise<void>;
}

/** Listens on `address` (a path, or "@name"), resolves once the socket exists. */
export async function startNotifySocket(address: string): Promise<NotifySocket> {
  const abstract = address.startsWith('@');
  const socat = spawn(
    'socat',
    ['-u', `${abstract ? 'ABSTRACT' : 'UNIX'}-RECV:${abstract ? address.slice(1) : address}`, 'STDOUT'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let received = '';
  socat.stdout.on('data', (part: Buffer) => {
    received += part.toString();
  });
  const exited = new Promise<void>((resolve) => socat.once('exit', () => resolve()));
  await eventually(
    () => (abstract ? readFileSync('/proc/net/unix', 'utf8').includes(` ${address}\n`) : existsSync(address)),
    5000,
    `notify socket ${address}`,
  );
  return {
    address,
    received: () => received,
    close: async () => {
      socat.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * pv-xconnect (dist/daemon/cli.js) against `ctrlSocket`, quiet, polling every `intervalSeconds`, no status socket.
 * `cli`: another build's executable (a benchmark's baseline); `wrapper` runs it under another program (valgrind).
 */
export function startDaemonProcess(
  ctrlSocket: string,
  intervalSeconds = 0.2,
  cli = DAEMON_CLI,
  wrapper: string[] = [],
): ChildProcess {
  const [file = process.execPath, ...args] = [...wrapper, process.execPath];
  return spawn(
    file,
    [
      ...args,
      cli,
      '--ctrl-socket',
      ctrlSocket,
      '--interval',
      String(intervalSeconds),
      '--status-socket',
      'none',
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
}

/** SIGTERM, and the exit (at once if it already exited). */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}
