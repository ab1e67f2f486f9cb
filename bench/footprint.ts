// Footprint and start-up of the daemon as it ships: anonymous memory (RssAnon: the Node binary's own pages are
// file-backed and shared) idle with 0, 100 and 1000 links, per idle link and per open connection; exec → READY=1
// with a 10-link graph; CPU per idle poll. Variants, all measured in this run: the x64 device bundle with the unit's
// V8 flags (what ships), without them, the npm package's dist/ form, the bundle on the oldest supported LTS, and the
// arm64 bundle under qemu-aarch64-static (information only: emulated time and qemu's own memory are not a device's).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { stopProcess } from '../testkit/daemon-process.js';
import { FakeCtrl } from '../testkit/fake-ctrl.js';
import { eventually } from '../testkit/mesh.js';
import { echo, hostLink, listen, nowMs, record, relayedConnections, round } from './harness.js';

const READY_RUNS = 7;
const IDLE_SIZES = [0, 100, 1000];
const OPEN_CONNECTIONS = 100;
const POLL_LINKS = 100;
const POLL_INTERVAL_S = 0.1;
const POLL_WINDOW_MS = 10_000;
/** One clock tick of /proc/PID/stat's utime and stime. */
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

interface Variant {
  name: string;
  /** The command up to (not including) the daemon's own arguments. */
  command: string[];
  env?: Record<string, string>;
  /** Emulated: generous waits, fewer runs. */
  slow: boolean;
}

function field(pid: number, name: string): number {
  const match = new RegExp(`${name}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : Number.NaN;
}

function cpuTicks(pid: number): number {
  // Fields after the command name (which may hold spaces): utime is the 14th field, stime the 15th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** The lowest RssAnon over a few samples once the daemon has settled: what it holds when idle. */
async function idleRssAnon(pid: number, settleMs: number): Promise<{ rssAnonKiB: number; rssKiB: number }> {
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  let rssAnonKiB = Number.POSITIVE_INFINITY;
  for (let sample = 0; sample < 5; sample += 1) {
    rssAnonKiB = Math.min(rssAnonKiB, field(pid, 'RssAnon'));
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { rssAnonKiB, rssKiB: field(pid, 'VmRSS') };
}

/** A service manager's notification socket (socat): resolves `ready` at the first READY=1. */
async function notifySocket(path: string) {
  const socat = spawn('socat', ['-u', `UNIX-RECV:${path}`, 'STDOUT'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let received = '';
  let onReady: () => void = () => {};
  const ready = new Promise<number>((resolve) => {
    onReady = () => resolve(nowMs());
  });
  socat.stdout.on('data', (part: Buffer) => {
    received += part.toString();
    if (received.includes('READY=1')) onReady();
  });
  await eventually(() => existsSync(path), 5000, 'notify socket');
  return { ready, close: () => stopProcess(socat) };
}

function startDaemon(variant: Variant, ctrlSocket: string, intervalS: number, notify: string): ChildProcess {
  const [file, ...args] = variant.command as [string, ...string[]];
  return spawn(
    file,
    [
      ...args,
      '--ctrl-socket',
      ctrlSocket,
      '--interval',
      String(intervalS),
      '--status-socket',
      'none',
      '--log-level',
      'error',
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, ...variant.env, NOTIFY_SOCKET: notify },
    },
  );
}

/** Starts of one variant up to READY=1 with a 10-link graph, from a clean slate each time. */
async function readyTime(variant: Variant, dir: string, providerPath: string, run: number): Promise<number> {
  const key = `${variant.name.replace(/\W+/g, '-')}-${run}`;
  const links = Array.from({ length: 10 }, (_, i) =>
    hostLink(`r${i}`, providerPath, join(dir, `r${key}-${i}.sock`)),
  );
  const ctrl = await FakeCtrl.serving(join(dir, `ctrl-ready-${key}.sock`), links);
  const notify = await notifySocket(join(dir, `notify-ready-${key}`));
  const started = nowMs();
  const daemon = startDaemon(
    variant,
    join(dir, `ctrl-ready-${key}.sock`),
    5,
    join(dir, `notify-ready-${key}`),
  );
  const ready = (await notify.ready) - started;
  await stopProcess(daemon);
  await notify.close();
  await ctrl.stop();
  return ready;
}

/** Node.js alone, exec to exit of `node -e 0`: the part of a start that is not the daemon's. */
function bareStartMs(node: string): number {
  const started = nowMs();
  execFileSync(node, ['-e', '0']);
  return nowMs() - started;
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

async function measure(variant: Variant, dir: string, providerPath: string, readyMs: number[]) {
  const timeout = variant.slow ? 180_000 : 30_000;
  const ctrlSocket = join(dir, `ctrl-${variant.name.replace(/\W+/g, '-')}.sock`);
  const ctrl = await FakeCtrl.serving(ctrlSocket, []);
  const linksOf = (count: number, prefix: string) =>
    Array.from({ length: count }, (_, i) =>
      hostLink(`${prefix}${i}`, providerPath, join(dir, `${prefix}${i}.sock`)),
    );
  const allPlanted = (count: number, prefix: string) => () =>
    count === 0 || existsSync(join(dir, `${prefix}${count - 1}.sock`));

  // Idle memory at 0, 100, 1000 links, then with connections open through 100 of them.
  const notify = await notifySocket(join(dir, 'notify-idle'));
  const daemon = startDaemon(variant, ctrlSocket, 1, join(dir, 'notify-idle'));
  const pid = daemon.pid as number;
  await notify.ready;
  const idle: Record<number, { rssAnonKiB: number; rssKiB: number }> = {};
  for (const size of IDLE_SIZES) {
    ctrl.setGraph(linksOf(size, 'm'));
    await eventually(allPlanted(size, 'm'), timeout, `${size} links`);
    idle[size] = await idleRssAnon(pid, variant.slow ? 8000 : 3000);
  }
  const sockets = await relayedConnections(
    Array.from({ length: OPEN_CONNECTIONS }, (_, i) => join(dir, `m${i}.sock`)),
  );
  const open = await idleRssAnon(pid, variant.slow ? 8000 : 3000);
  for (const socket of sockets) socket.destroy();
  await stopProcess(daemon);
  await notify.close();

  // CPU per idle poll: a 100-link graph polled every 0.1 s.
  ctrl.setGraph(linksOf(POLL_LINKS, 'p'));
  const pollNotify = await notifySocket(join(dir, 'notify-poll'));
  const poller = startDaemon(variant, ctrlSocket, POLL_INTERVAL_S, join(dir, 'notify-poll'));
  await pollNotify.ready;
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const requestsBefore = ctrl.requests;
  const ticksBefore = cpuTicks(poller.pid as number);
  await new Promise((resolve) => setTimeout(resolve, POLL_WINDOW_MS));
  const cpuMs = (cpuTicks(poller.pid as number) - ticksBefore) * TICK_MS;
  const polls = ctrl.requests - requestsBefore;
  await stopProcess(poller);
  await pollNotify.close();
  await ctrl.stop();

  const at = (size: number) => idle[size] as { rssAnonKiB: number; rssKiB: number };
  return {
    variant: variant.name,
    // The first start compiles (and fills the compile cache where there is one); the others are what a restart costs.
    'exec→READY first ms': round(readyMs[0] as number),
    'exec→READY p50 ms': round(median(readyMs.slice(1))),
    'exec→READY min ms': round(Math.min(...readyMs.slice(1))),
    'RssAnon 0 links KiB': at(0).rssAnonKiB,
    'RssAnon 100 links KiB': at(100).rssAnonKiB,
    'RssAnon 1000 links KiB': at(1000).rssAnonKiB,
    'per idle link KiB': round((at(1000).rssAnonKiB - at(0).rssAnonKiB) / 1000, 2),
    'per open connection KiB': round((open.rssAnonKiB - at(1000).rssAnonKiB) / OPEN_CONNECTIONS, 2),
    'RSS 0 links KiB': at(0).rssKiB,
    'CPU ms per poll (100 links)': round(cpuMs / Math.max(1, polls), 3),
    polls,
  };
}

/** The unit's V8 flags, as the bundle's systemd unit states them. */
function unitFlags(bundle: string): string[] {
  const unit = readFileSync(join(bundle, 'systemd', 'pv-xconnect.service'), 'utf8');
  return (/^Environment="PVX_NODE_FLAGS=(.*)"$/m.exec(unit)?.[1] ?? '').split(' ').filter(Boolean);
}

function fetchNode(role: string, arch: string): string {
  return join(execFileSync(join('packaging', 'fetch-node'), [role, arch]).toString().trim(), 'bin', 'node');
}

export async function run(): Promise<void> {
  const dir = mkdtempSync('/dev/shm/pvx-bench-footprint-');
  try {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    execFileSync('npm', ['run', '--silent', 'bundle', '--', '--out', dir, 'x64', 'arm64'], {
      stdio: 'inherit',
    });
    for (const arch of ['x64', 'arm64']) {
      execFileSync('tar', ['-xzf', join(dir, `pv-xconnect-${version}-linux-${arch}.tar.gz`), '-C', dir]);
    }
    const x64 = join(dir, `pv-xconnect-${version}-linux-x64`);
    const arm64 = join(dir, `pv-xconnect-${version}-linux-arm64`);
    const flags = unitFlags(x64);
    const daemonFile = (bundle: string) => join(bundle, 'lib', 'pv-xconnect.mjs');
    const lts = join(x64, 'node', 'bin', 'node');
    const cache = (name: string) => ({ NODE_COMPILE_CACHE: join(dir, `compile-cache-${name}`) });
    const variants: Variant[] = [
      // What ships: the launcher, with the unit's V8 flags (its default) and V8's compile cache.
      {
        name: 'x64 bundle via its launcher',
        command: [join(x64, 'bin', 'pv-xconnect')],
        env: cache('x64'),
        slow: false,
      },
      { name: 'x64 bundle, no flags, no cache', command: [lts, daemonFile(x64)], slow: false },
      {
        name: 'npm package (dist/), no flags, no cache',
        command: [lts, join('dist', 'daemon', 'cli.js')],
        slow: false,
      },
      {
        name: 'x64 bundle, unit flags and cache, oldest LTS',
        command: [fetchNode('oldest', 'x64'), ...flags, daemonFile(x64)],
        env: cache('oldest'),
        slow: false,
      },
      {
        name: 'arm64 bundle under qemu, unit flags and cache',
        command: [
          'qemu-aarch64-static',
          '-L',
          '/usr/aarch64-linux-gnu',
          join(arm64, 'node', 'bin', 'node'),
          ...flags,
          daemonFile(arm64),
        ],
        env: cache('arm64'),
        slow: true,
      },
    ];
    const providerPath = join(dir, 'echo.sock');
    const provider = await listen(providerPath, echo);
    const load = { before: loadavg().map((value) => round(value, 2)) };
    const rows = [];
    // Starts in turns (one of each variant per round), so that a change of load hits every variant alike.
    const readyMs = new Map<Variant, number[]>(variants.map((variant) => [variant, []]));
    const bareMs: number[] = [];
    for (let run = 0; run < READY_RUNS; run += 1) {
      bareMs.push(bareStartMs(lts));
      for (const variant of variants) {
        if (variant.slow && run >= 3) continue;
        readyMs.get(variant)?.push(await readyTime(variant, dir, providerPath, run));
      }
    }
    for (const variant of variants) {
      console.log(`footprint: ${variant.name}`);
      rows.push(await measure(variant, dir, providerPath, readyMs.get(variant) ?? []));
    }
    const bareNodeStartMs = { p50: round(median(bareMs)), min: round(Math.min(...bareMs)) };
    provider.close();
    const nodeVersions = {
      lts: execFileSync(lts, ['--version']).toString().trim(),
      oldest: execFileSync(fetchNode('oldest', 'x64'), ['--version']).toString().trim(),
    };
    record(
      'footprint',
      {
        flags,
        nodeVersions,
        bareNodeStartMs,
        load: { ...load, after: loadavg().map((value) => round(value, 2)) },
        rows,
      },
      rows,
    );
    console.log('bare node start (ms):', bareNodeStartMs);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
