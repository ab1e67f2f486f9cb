// `npm run bench -- dbus`: the D-Bus mediator (the real pv-xconnect process, host-side dbus links: one without a
// policy, one whose role a 20-entry `allow` list narrows) vs a direct connection to the bus vs xdg-dbus-proxy
// (unfiltered, and filtered by the equivalent --call/--broadcast rules): method calls per second and latency of a
// small echo method with 1 and 16 concurrent clients, a flood of 100k signals to one consumer, and a 16 MiB message
// echoed.
// One dbus-daemon, one echo service (its own process, testkit/dbus-echo-service.ts); clients speak through
// testkit/dbus-peer.ts. Both relays' CPU time per message relayed (the daemon's, xdg-dbus-proxy's); the paths take
// turns over ROUNDS rounds, each starting one path further on; rates are medians of the rounds with their spread.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectIn } from '../native/namespace.js';
import { PACKAGE_ROOT } from '../native/package-root.js';
import { startDaemonProcess, stopProcess } from '../testkit/daemon-process.js';
import { GENEROUS_BUS_LIMITS } from '../testkit/dbus-bus.js';
import { DBusPeer } from '../testkit/dbus-peer.js';
import { FakeCtrl } from '../testkit/fake-ctrl.js';
import { eventually } from '../testkit/mesh.js';
import {
  cpuMs,
  hostLink,
  interleaved,
  nowMs,
  paired,
  percentile,
  record,
  round,
  type Spread,
  showSpread,
  spread,
  watchLoad,
} from './harness.js';

const SERVICE = 'org.pvx.Bench';
const SERVICE_PATH = '/org/pvx/Bench';
const ROUNDS = 5;
const WARMUP_CALLS = 320;
/** Totals over all rounds. */
const SERIAL_CALLS = 10_000;
const CONCURRENT_CLIENTS = 16;
const CALLS_PER_CONCURRENT_CLIENT = 1000;
/** Per round. */
const SIGNALS = 100_000;
const BIG_MESSAGE_BYTES = 16 * 1024 * 1024;
/** Policy entries besides the one that lets the bench's calls through (which comes last: every call checks all). */
const OTHER_RULES = 19;
const POLICED = 'pv-xconnect, 20-rule policy';
const FILTERED_PROXY = 'xdg-dbus-proxy, filtered';

/** The narrowed role's `allow` list: 19 entries for other interfaces, then the bench's own. */
function benchPolicy(): unknown[] {
  const others = Array.from({ length: OTHER_RULES }, (_, i) => ({
    role: 'root',
    interfaces: [`org.pvx.Other${i}`],
    members: [`Method${i}`, 'Get*'],
    paths: [`/org/pvx/Other${i}/*`],
  }));
  return [
    ...others,
    { role: 'root', interfaces: [SERVICE], members: ['Echo', 'Flood'], paths: [SERVICE_PATH] },
  ];
}

/** xdg-dbus-proxy's equivalent of benchPolicy: a --call rule per entry, and the bench service's signals. */
function proxyFilter(): string[] {
  const others = Array.from(
    { length: OTHER_RULES },
    (_, i) => `--call=org.pvx.Other${i}=org.pvx.Other${i}.Method${i}@/org/pvx/Other${i}/*`,
  );
  return [
    '--filter',
    ...others,
    `--call=${SERVICE}=${SERVICE}.Echo@${SERVICE_PATH}`,
    `--call=${SERVICE}=${SERVICE}.Flood@${SERVICE_PATH}`,
    `--broadcast=${SERVICE}=${SERVICE}.*@${SERVICE_PATH}`,
  ];
}

function busConfig(socket: string): string {
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
${GENEROUS_BUS_LIMITS}
</busconfig>
`;
}

function startService(bus: string): Promise<ChildProcess> {
  const service = join(PACKAGE_ROOT, 'dist', 'testkit', 'dbus-echo-service.js');
  const child = spawn(process.execPath, [service, bus, SERVICE, SERVICE_PATH], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.stdout?.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`echo service exited (${code})`)));
  });
}

async function client(path: string): Promise<DBusPeer> {
  return DBusPeer.connect(await connectIn({ pid: 0, path }));
}

function echo(peer: DBusPeer, signature: string, value: string | Buffer) {
  return peer.call({
    destination: SERVICE,
    path: SERVICE_PATH,
    interface: SERVICE,
    member: 'Echo',
    signature,
    body: [value],
  });
}

interface BenchPath {
  name: string;
  socket: string;
  /** The relaying process, whose CPU time is counted (null for direct). */
  relayPid: number | null;
}

/** One measurement on one path in one round. */
interface Tally {
  count: number;
  seconds: number;
  samples: number[];
  /** CPU the path's relay used meanwhile (NaN when there is none). */
  relayCpuMs: number;
}

function tally(): Tally {
  return { count: 0, seconds: 0, samples: [], relayCpuMs: 0 };
}

const relayCpu = (path: BenchPath) => (path.relayPid === null ? Number.NaN : cpuMs(path.relayPid));

async function callLoop(peer: DBusPeer, calls: number, samples: number[]): Promise<void> {
  for (let i = 0; i < calls; i += 1) {
    const start = nowMs();
    await echo(peer, 's', 'ping');
    samples.push((nowMs() - start) * 1000);
  }
}

/** `clients` connections each make `perClient` sequential echo calls (latencies in µs). */
async function callRound(path: BenchPath, clients: number, perClient: number): Promise<Tally> {
  const into = tally();
  // One at a time: xdg-dbus-proxy's listen backlog is short, and a full backlog fails a connect at once.
  const peers: DBusPeer[] = [];
  for (let i = 0; i < clients; i += 1) peers.push(await client(path.socket));
  await Promise.all(peers.map((peer) => callLoop(peer, WARMUP_CALLS / clients, [])));
  const cpuBefore = relayCpu(path);
  const start = nowMs();
  await Promise.all(peers.map((peer) => callLoop(peer, perClient, into.samples)));
  into.seconds = (nowMs() - start) / 1000;
  into.relayCpuMs = relayCpu(path) - cpuBefore;
  into.count = clients * perClient;
  for (const peer of peers) peer.close();
  return into;
}

/** SIGNALS signals from the service to one subscribed connection. */
async function floodRound(path: BenchPath): Promise<Tally> {
  const into = tally();
  const peer = await client(path.socket);
  await peer.callBus('AddMatch', 's', [`type='signal',interface='${SERVICE}'`]);
  let received = 0;
  peer.onSignal(() => {
    received += 1;
  });
  const cpuBefore = relayCpu(path);
  const start = nowMs();
  await peer.call({
    destination: SERVICE,
    path: SERVICE_PATH,
    interface: SERVICE,
    member: 'Flood',
    signature: 'u',
    body: [SIGNALS],
  });
  // The bus keeps one sender's order: the reply comes after every signal.
  into.seconds = (nowMs() - start) / 1000;
  into.relayCpuMs = relayCpu(path) - cpuBefore;
  into.count = SIGNALS;
  peer.close();
  if (received !== SIGNALS) throw new Error(`${received} of ${SIGNALS} signals arrived`);
  return into;
}

/** One 16 MiB byte array echoed (milliseconds). */
async function bigMessageRound(path: BenchPath): Promise<number> {
  const peer = await client(path.socket);
  const start = nowMs();
  const { message } = await echo(peer, 'ay', Buffer.alloc(BIG_MESSAGE_BYTES, 0x5a));
  const ms = nowMs() - start;
  peer.close();
  if ((message.body[0] as Buffer).length !== BIG_MESSAGE_BYTES) throw new Error('the echo was cut');
  return ms;
}

interface Round {
  one: Tally;
  many: Tally;
  flood: Tally;
  bigMs: number;
}

const rate = ({ count, seconds }: Tally) => count / seconds;
/** Each call is two messages (call and reply): what relaying one costs, whatever the load. */
const cpuPerMessageUs = ({ count, relayCpuMs }: Tally) => (relayCpuMs * 1000) / (2 * count);

/**
 * Every measurement on every path. Other work on the machine comes and goes, so the paths take turns in short
 * rounds (bench/harness.ts interleaved): all paths see the same share of the disturbance.
 */
function measure(paths: BenchPath[]): Promise<Map<string, Round[]>> {
  return interleaved(ROUNDS, paths, async (path) => ({
    one: await callRound(path, 1, SERIAL_CALLS / ROUNDS),
    many: await callRound(path, CONCURRENT_CLIENTS, CALLS_PER_CONCURRENT_CLIENT / ROUNDS),
    flood: await floodRound(path),
    bigMs: await bigMessageRound(path),
  }));
}

/** A path's figures: rates and CPU as median (min–max) over the rounds, latencies over all rounds' calls. */
function summary(rounds: Round[]) {
  const latency = (pick: (round: Round) => Tally, p: number) =>
    round(
      percentile(
        rounds.flatMap((r) => pick(r).samples).sort((a, b) => a - b),
        p,
      ),
    );
  const of = (pick: (round: Round) => number, digits = 0) => spread(rounds.map(pick), digits);
  return {
    'calls/s (1 client)': of((r) => rate(r.one)),
    'p50 µs (1)': latency((r) => r.one, 50),
    'p99 µs (1)': latency((r) => r.one, 99),
    [`calls/s (${CONCURRENT_CLIENTS} clients)`]: of((r) => rate(r.many)),
    [`p50 µs (${CONCURRENT_CLIENTS})`]: latency((r) => r.many, 50),
    [`p99 µs (${CONCURRENT_CLIENTS})`]: latency((r) => r.many, 99),
    'signals/s (100k flood)': of((r) => rate(r.flood)),
    '16 MiB echo ms': of((r) => r.bigMs),
    'relay CPU µs/message (1)': of((r) => cpuPerMessageUs(r.one), 1),
    [`relay CPU µs/message (${CONCURRENT_CLIENTS})`]: of((r) => cpuPerMessageUs(r.many), 1),
    'relay CPU µs/signal': of((r) => (r.flood.relayCpuMs * 1000) / r.flood.count, 2),
  };
}

export async function run(): Promise<void> {
  const dir = mkdtempSync('/dev/shm/pvx-bench-dbus-');
  const busPath = join(dir, 'bus.sock');
  const socketOf = (name: string) => join(dir, `${name}.sock`);
  const load = watchLoad();
  const children: ChildProcess[] = [];
  const ctrl = new FakeCtrl(join(dir, 'ctrl.sock'));
  let rounds: Map<string, Round[]>;
  try {
    writeFileSync(join(dir, 'bus.conf'), busConfig(busPath));
    const busArgs = [`--config-file=${join(dir, 'bus.conf')}`, '--nofork', '--nopidfile'];
    children.push(spawn('dbus-daemon', busArgs, { stdio: 'ignore' }));
    await eventually(() => existsSync(busPath), 10_000, 'dbus-daemon');
    children.push(await startService(busPath));
    ctrl.setGraph([
      hostLink('bench-bus', busPath, socketOf('mesh'), { type: 'dbus', role: 'root' }),
      hostLink('bench-policy', busPath, socketOf('mesh-policy'), {
        type: 'dbus',
        role: 'root',
        allow: benchPolicy(),
      }),
    ]);
    await ctrl.start();
    const daemon = startDaemonProcess(ctrl.socketPath);
    children.push(daemon);
    const proxy = spawn('xdg-dbus-proxy', [`unix:path=${busPath}`, socketOf('proxy')], { stdio: 'ignore' });
    const filtered = spawn(
      'xdg-dbus-proxy',
      [`unix:path=${busPath}`, socketOf('proxy-filtered'), ...proxyFilter()],
      { stdio: 'ignore' },
    );
    children.push(proxy, filtered);
    const sockets = ['mesh', 'mesh-policy', 'proxy', 'proxy-filtered'].map(socketOf);
    await eventually(() => sockets.every((socket) => existsSync(socket)), 10_000, 'the relays');
    const daemonPid = daemon.pid as number;
    rounds = await measure([
      { name: 'direct', socket: busPath, relayPid: null },
      { name: 'pv-xconnect', socket: socketOf('mesh'), relayPid: daemonPid },
      { name: POLICED, socket: socketOf('mesh-policy'), relayPid: daemonPid },
      { name: 'xdg-dbus-proxy', socket: socketOf('proxy'), relayPid: proxy.pid as number },
      { name: FILTERED_PROXY, socket: socketOf('proxy-filtered'), relayPid: filtered.pid as number },
    ]);
  } finally {
    // The bus goes last: the others are its clients.
    for (const child of children.reverse()) await stopProcess(child);
    await ctrl.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const ours = 'pv-xconnect';
  const proxy = 'xdg-dbus-proxy';
  const ratios = {
    'calls/s vs direct (1 client)': paired(rounds, ours, 'direct', (r) => rate(r.one)),
    [`calls/s vs direct (${CONCURRENT_CLIENTS} clients)`]: paired(rounds, ours, 'direct', (r) =>
      rate(r.many),
    ),
    'calls/s vs xdg-dbus-proxy (1 client)': paired(rounds, ours, proxy, (r) => rate(r.one)),
    [`calls/s vs xdg-dbus-proxy (${CONCURRENT_CLIENTS} clients)`]: paired(rounds, ours, proxy, (r) =>
      rate(r.many),
    ),
    'signals/s vs direct': paired(rounds, ours, 'direct', (r) => rate(r.flood)),
    'signals/s vs xdg-dbus-proxy': paired(rounds, ours, proxy, (r) => rate(r.flood)),
    'CPU per message vs xdg-dbus-proxy (1 client)': paired(rounds, ours, proxy, (r) =>
      cpuPerMessageUs(r.one),
    ),
    [`CPU per message vs xdg-dbus-proxy (${CONCURRENT_CLIENTS} clients)`]: paired(rounds, ours, proxy, (r) =>
      cpuPerMessageUs(r.many),
    ),
    'CPU per signal vs xdg-dbus-proxy': paired(
      rounds,
      ours,
      proxy,
      (r) => r.flood.relayCpuMs / r.flood.count,
    ),
    // The policy's cost (target: at most 5% of the call rate), and filtered against filtered (target: at or above).
    'policy: calls/s vs none (1 client)': paired(rounds, POLICED, ours, (r) => rate(r.one)),
    [`policy: calls/s vs none (${CONCURRENT_CLIENTS} clients)`]: paired(rounds, POLICED, ours, (r) =>
      rate(r.many),
    ),
    'policy: CPU per message vs none (1 client)': paired(rounds, POLICED, ours, (r) =>
      cpuPerMessageUs(r.one),
    ),
    [`policy: CPU per message vs none (${CONCURRENT_CLIENTS} clients)`]: paired(rounds, POLICED, ours, (r) =>
      cpuPerMessageUs(r.many),
    ),
    'policy: calls/s vs xdg-dbus-proxy filtered (1 client)': paired(rounds, POLICED, FILTERED_PROXY, (r) =>
      rate(r.one),
    ),
    [`policy: calls/s vs xdg-dbus-proxy filtered (${CONCURRENT_CLIENTS} clients)`]: paired(
      rounds,
      POLICED,
      FILTERED_PROXY,
      (r) => rate(r.many),
    ),
    'policy: CPU per message vs xdg-dbus-proxy filtered (1 client)': paired(
      rounds,
      POLICED,
      FILTERED_PROXY,
      (r) => cpuPerMessageUs(r.one),
    ),
  };
  const method = {
    rounds: ROUNDS,
    serialCalls: SERIAL_CALLS,
    concurrentClients: CONCURRENT_CLIENTS,
    callsPerConcurrentClient: CALLS_PER_CONCURRENT_CLIENT,
    signals: SIGNALS,
    bigMessageBytes: BIG_MESSAGE_BYTES,
    policy: `${OTHER_RULES + 1} entries for the role, the one matching the bench's calls last; xdg-dbus-proxy filtered: ${proxyFilter().join(' ')}`,
    note: 'paths take turns, each round starting one path further; rates and CPU are median (min–max) over the rounds, latencies pool all rounds; relay CPU is user + system of the relaying process (the daemon, xdg-dbus-proxy). Clients: testkit/dbus-peer.ts, service: testkit/dbus-echo-service.ts',
  };
  const paths = Object.fromEntries([...rounds].map(([path, results]) => [path, summary(results)]));
  const shown = (value: number | Spread | undefined) =>
    value === undefined ? '–' : typeof value === 'number' ? value : showSpread(value);
  const rows = Object.entries(paths).map(([path, result]) => ({
    path,
    ...Object.fromEntries(Object.entries(result).map(([key, value]) => [key, shown(value)])),
  }));
  // The machine is shared: the load before and after says how much the numbers were disturbed.
  record('dbus', { method, load: load(), paths, ratios }, rows);
  console.log(
    'ratios:',
    Object.fromEntries(Object.entries(ratios).map(([key, value]) => [key, shown(value)])),
  );
}
