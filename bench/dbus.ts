// `npm run bench -- dbus`: the D-Bus mediator (the real pv-xconnect process, a host-side dbus link) vs a direct
// connection to the bus vs xdg-dbus-proxy (unfiltered): method calls per second and latency of a small echo method
// with 1 and 16 concurrent clients, a flood of 100k signals to one consumer, and a 16 MiB message echoed.
// One dbus-daemon, one echo service (its own process, testkit/dbus-echo-service.ts); clients speak through
// testkit/dbus-peer.ts.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { connectIn } from '../native/namespace.js';
import { PACKAGE_ROOT } from '../native/package-root.js';
import { startDaemonProcess, stopProcess } from '../testkit/daemon-process.js';
import { GENEROUS_BUS_LIMITS } from '../testkit/dbus-bus.js';
import { DBusPeer } from '../testkit/dbus-peer.js';
import { FakeCtrl } from '../testkit/fake-ctrl.js';
import { eventually } from '../testkit/mesh.js';
import { cpuMs, hostLink, nowMs, percentile, record, round } from './harness.js';

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

/** One measurement on one path, summed over the rounds. */
interface Tally {
  count: number;
  seconds: number;
  samples: number[];
  /** CPU the pv-xconnect daemon used meanwhile (none when it is not on the path). */
  daemonCpuMs: number;
}

function tally(): Tally {
  return { count: 0, seconds: 0, samples: [], daemonCpuMs: 0 };
}

async function callLoop(peer: DBusPeer, calls: number, samples: number[]): Promise<void> {
  for (let i = 0; i < calls; i += 1) {
    const start = nowMs();
    await echo(peer, 's', 'ping');
    samples.push((nowMs() - start) * 1000);
  }
}

/** `clients` connections each make `perClient` sequential echo calls (latencies in µs). */
async function callRound(
  path: string,
  clients: number,
  perClient: number,
  into: Tally,
  daemonPid: number,
): Promise<void> {
  // One at a time: xdg-dbus-proxy's listen backlog is short, and a full backlog fails a connect at once.
  const peers: DBusPeer[] = [];
  for (let i = 0; i < clients; i += 1) peers.push(await client(path));
  await Promise.all(peers.map((peer) => callLoop(peer, WARMUP_CALLS / clients, [])));
  const cpuBefore = cpuMs(daemonPid);
  const start = nowMs();
  await Promise.all(peers.map((peer) => callLoop(peer, perClient, into.samples)));
  into.seconds += (nowMs() - start) / 1000;
  into.daemonCpuMs += cpuMs(daemonPid) - cpuBefore;
  into.count += clients * perClient;
  for (const peer of peers) peer.close();
}

/** SIGNALS signals from the service to one subscribed connection. */
async function floodRound(path: string, into: Tally): Promise<void> {
  const peer = await client(path);
  await peer.callBus('AddMatch', 's', [`type='signal',interface='${SERVICE}'`]);
  let received = 0;
  peer.onSignal(() => {
    received += 1;
  });
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
  into.seconds += (nowMs() - start) / 1000;
  into.count += SIGNALS;
  peer.close();
  if (received !== SIGNALS) throw new Error(`${received} of ${SIGNALS} signals arrived`);
}

/** One 16 MiB byte array echoed (milliseconds). */
async function bigMessageRound(path: string, into: Tally): Promise<void> {
  const peer = await client(path);
  const start = nowMs();
  const { message } = await echo(peer, 'ay', Buffer.alloc(BIG_MESSAGE_BYTES, 0x5a));
  into.samples.push(nowMs() - start);
  peer.close();
  if ((message.body[0] as Buffer).length !== BIG_MESSAGE_BYTES) throw new Error('the echo was cut');
}

/**
 * Every measurement on every path. Other work on the machine comes and goes, so the paths take turns in short
 * rounds and each path's result pools all its rounds: all paths see the same share of the disturbance.
 */
async function measure(
  paths: Record<string, string>,
  daemonPid: number,
): Promise<Record<string, Record<string, number>>> {
  const tallies = Object.fromEntries(
    Object.keys(paths).map((name) => [name, { one: tally(), many: tally(), flood: tally(), big: tally() }]),
  );
  for (let turn = 0; turn < ROUNDS; turn += 1) {
    for (const [name, path] of Object.entries(paths)) {
      const of = tallies[name] as (typeof tallies)[string];
      await callRound(path, 1, SERIAL_CALLS / ROUNDS, of.one, daemonPid);
      await callRound(path, CONCURRENT_CLIENTS, CALLS_PER_CONCURRENT_CLIENT / ROUNDS, of.many, daemonPid);
      await floodRound(path, of.flood);
      await bigMessageRound(path, of.big);
    }
  }
  const rate = ({ count, seconds }: Tally) => round(count / seconds);
  const at = ({ samples }: Tally, p: number) =>
    round(
      percentile(
        samples.sort((a, b) => a - b),
        p,
      ),
    );
  return Object.fromEntries(
    Object.entries(tallies).map(([name, { one, many, flood, big }]) => [
      name,
      {
        'calls/s (1 client)': rate(one),
        'p50 µs (1)': at(one, 50),
        'p99 µs (1)': at(one, 99),
        [`calls/s (${CONCURRENT_CLIENTS} clients)`]: rate(many),
        [`p50 µs (${CONCURRENT_CLIENTS})`]: at(many, 50),
        [`p99 µs (${CONCURRENT_CLIENTS})`]: at(many, 99),
        'signals/s (100k flood)': rate(flood),
        '16 MiB echo ms (p50)': at(big, 50),
        // Each call is two messages (call and reply): what relaying one costs the daemon, whatever the load.
        'daemon CPU µs/message (1)': round((one.daemonCpuMs * 1000) / (2 * one.count)),
        [`daemon CPU µs/message (${CONCURRENT_CLIENTS})`]: round(
          (many.daemonCpuMs * 1000) / (2 * many.count),
        ),
      },
    ]),
  );
}

export async function run(): Promise<void> {
  const dir = mkdtempSync('/dev/shm/pvx-bench-dbus-');
  const busPath = join(dir, 'bus.sock');
  const meshPath = join(dir, 'mesh.sock');
  const proxyPath = join(dir, 'proxy.sock');
  const paths = { direct: busPath, 'pv-xconnect': meshPath, 'xdg-dbus-proxy': proxyPath };
  const loadBefore = loadavg();
  const children: ChildProcess[] = [];
  const ctrl = new FakeCtrl(join(dir, 'ctrl.sock'));
  let results: Record<string, Record<string, number>>;
  try {
    writeFileSync(join(dir, 'bus.conf'), busConfig(busPath));
    const busArgs = [`--config-file=${join(dir, 'bus.conf')}`, '--nofork', '--nopidfile'];
    children.push(spawn('dbus-daemon', busArgs, { stdio: 'ignore' }));
    await eventually(() => existsSync(busPath), 10_000, 'dbus-daemon');
    children.push(await startService(busPath));
    ctrl.setGraph([hostLink('bench-bus', busPath, meshPath, { type: 'dbus', role: 'root' })]);
    await ctrl.start();
    const daemon = startDaemonProcess(ctrl.socketPath);
    children.push(daemon);
    children.push(spawn('xdg-dbus-proxy', [`unix:path=${busPath}`, proxyPath], { stdio: 'ignore' }));
    await eventually(() => existsSync(meshPath) && existsSync(proxyPath), 10_000, 'the relays');
    results = await measure(paths, daemon.pid as number);
  } finally {
    // The bus goes last: the others are its clients.
    for (const child of children.reverse()) await stopProcess(child);
    await ctrl.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const ratio = (path: string, metric: string, base: string) =>
    round((results[path]?.[metric] ?? Number.NaN) / (results[base]?.[metric] ?? Number.NaN), 2);
  const ratios = {
    callRateVsDirect1: ratio('pv-xconnect', 'calls/s (1 client)', 'direct'),
    callRateVsDirect16: ratio('pv-xconnect', `calls/s (${CONCURRENT_CLIENTS} clients)`, 'direct'),
    callRateVsProxy1: ratio('pv-xconnect', 'calls/s (1 client)', 'xdg-dbus-proxy'),
    callRateVsProxy16: ratio('pv-xconnect', `calls/s (${CONCURRENT_CLIENTS} clients)`, 'xdg-dbus-proxy'),
    signalRateVsDirect: ratio('pv-xconnect', 'signals/s (100k flood)', 'direct'),
    signalRateVsProxy: ratio('pv-xconnect', 'signals/s (100k flood)', 'xdg-dbus-proxy'),
  };
  const method = {
    rounds: ROUNDS,
    serialCalls: SERIAL_CALLS,
    concurrentClients: CONCURRENT_CLIENTS,
    callsPerConcurrentClient: CALLS_PER_CONCURRENT_CLIENT,
    signals: SIGNALS,
    bigMessageBytes: BIG_MESSAGE_BYTES,
    note: 'paths take turns in each round; each result pools all rounds. Clients: testkit/dbus-peer.ts, service: testkit/dbus-echo-service.ts',
    // The machine is shared: the load before and after says how much the numbers were disturbed.
    loadAverage: { before: loadBefore, after: loadavg() },
  };
  const rows = Object.entries(results).map(([path, result]) => ({ path, ...result }));
  record('dbus', { method, paths: results, ratios }, rows);
  console.log('ratios:', ratios);
}
