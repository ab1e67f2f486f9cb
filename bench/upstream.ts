// Upstream's C pv-xconnect (pantavisor/pantavisor, xconnect/, libevent) as a baseline, when the environment names
// its binary: PVX_BENCH_UPSTREAM=/path/to/pv-xconnect. Nothing of it is in this repository; bench/README.md says how
// the recorded runs got it.
//
// Upstream dials pv-ctrl at a fixed path (/run/pantavisor/pv/pv-ctrl), so it runs in a mount namespace of its own
// whose /run is a private tmpfs holding only a link to our stand-in: nothing is created on the host's /run. It
// parses only the first read of pv-ctrl's answer, so the stand-in answers in one write, under 4096 bytes.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { stopProcess } from '../testkit/daemon-process.js';
import { FakeCtrl } from '../testkit/fake-ctrl.js';
import type { GraphEntry } from '../testkit/mesh.js';

/** The binary to compare with, or null: the benches then leave upstream out. */
export const UPSTREAM_BINARY = process.env.PVX_BENCH_UPSTREAM || null;

/** What upstream's graph client can read: headers and body in its first read of 4096 bytes. */
const FIRST_READ_BYTES = 4096;

export interface Upstream {
  /** The relaying process (for its CPU time). */
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

function answerInOneRead(links: GraphEntry[]): string {
  const body = JSON.stringify(links);
  const answer = `HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  if (Buffer.byteLength(answer) >= FIRST_READ_BYTES)
    throw new Error(
      `upstream reads only ${FIRST_READ_BYTES} bytes of pv-ctrl's answer: the bench graph is too big`,
    );
  return answer;
}

/**
 * Upstream's daemon serving `links` (with `dir` for its pv-ctrl stand-in), once every link's target exists; null
 * when PVX_BENCH_UPSTREAM is not set. `wrapper` runs it under another program (valgrind).
 */
export async function startUpstream(
  dir: string,
  links: GraphEntry[],
  wrapper: string[] = [],
): Promise<Upstream | null> {
  if (!UPSTREAM_BINARY) return null;
  if (!existsSync(UPSTREAM_BINARY)) throw new Error(`PVX_BENCH_UPSTREAM: no such file ${UPSTREAM_BINARY}`);
  const ctrl = new FakeCtrl(join(dir, 'upstream-ctrl.sock'));
  ctrl.setAnswer({ raw: answerInOneRead(links) });
  await ctrl.start();
  const script = [
    'set -e',
    'mount -t tmpfs -o mode=0755 upstream-run /run',
    'mkdir -p /run/pantavisor/pv',
    'ln -s "$1" /run/pantavisor/pv/pv-ctrl',
    'shift',
    'exec "$@"',
  ].join('\n');
  const child = spawn(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      script,
      'upstream',
      ctrl.socketPath,
      ...wrapper,
      UPSTREAM_BINARY,
    ],
    // It logs every connection on stdout: kept (a device logs them too), but not shown.
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const started = Date.now();
  while (!links.every((link) => typeof link.target === 'string' && existsSync(link.target))) {
    if (child.exitCode !== null) throw new Error(`upstream's pv-xconnect exited (${child.exitCode})`);
    if (Date.now() - started > 60_000)
      throw new Error("upstream's pv-xconnect planted no sockets within 60 s");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    process: child,
    async stop() {
      await stopProcess(child);
      await ctrl.stop();
    },
  };
}
