// `npm run bench -- dbus`: the D-Bus mediator (the real pv-xconnect process, host-side dbus links: one without a
// policy, one whose role a 20-entry `allow` list narrows) vs a direct connection to the bus vs xdg-dbus-proxy
// (unfiltered, and filtered by the equivalent --call/--broadcast rules): method calls per second and latency of a
// small echo method with 1 and 16 concurrent clients, a flood of 100k signals to one consumer, and a 16 MiB message
// echoed.
// One dbus-daemon, one echo service (its own process, testkit/dbus-echo-service.ts); clients speak through
// testkit/dbus-peer.ts. Both relays' CPU time per message relayed (the daemon's, xdg-dbus-proxy's); the paths take
// turns over ROUNDS rounds, each starting one path further on; rates are medians of the rounds with their spread.
// Then the instructions each relay executes per call and per signal, under callgrind (bench/instructions.ts).
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
import {
  CALLGRIND_AVAILABLE,
  callgrind,
  daemonUnderCallgrind,
  type InstructionCounts,
  instructionCounts,
  type RelayUnderTest,
  type Workload,
  whenExisting,
} from './instructions.js';

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
/** Under callgrind (everything runs ~50× slower): calls per workload, signals of the flood. */
const COUNTED_CALLS = 2000;
const COUNTED_SIGNALS = 10_000;
/** Counts of each workload, in a row. */
const COUNTS = 3;
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

/** A host-side link of the daemon to the bus: without a policy, or under benchPolicy (`filtered`). */
function benchLink(busPath: string, socket: string, filtered: boolean) {
  return filtered
    ? hostLink('bench-policy', busPath, socket, { type: 'dbus', role: 'root', allow: benchPolicy() })
    : hostLink('bench-bus', busPath, socket, { type: 'dbus', role: 'root' });
}

/** xdg-dbus-proxy listening on `socket` with `options` (e.g. proxyFilter()), under `wrapper` if given. */
function startProxy(
  busPath: string,
  socket: string,
  options: string[],
  wrapper: string[] = [],
): ChildProcess {
  const [file = 'xdg-dbus-proxy', ...args] = [...wrapper, 'xdg-dbus-proxy'];
  return spawn(file, [...args, `unix:path=${busPath}`, socket, ...options], { stdio: 'ignore' });
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

/** `signals` signals from the service to `peer`, subscribed to them: their count once the last arrived. */
async function floodOnce(peer: DBusPeer, signals: number): Promise<void> {
  let received = 0;
  peer.onSignal(() => {
    received += 1;
  });
  await peer.call({
    destination: SERVICE,
    path: SERVICE_PATH,
    interface: SERVICE,
    member: 'Flood',
    signature: 'u',
    body: [signals],
  });
  // The bus keeps one sender's order: the reply comes after every signal.
  if (received !== signals) throw new Error(`${received} of ${signals} signals arrived`);
}

/** A client of `socket` subscribed to the bench service's signals. */
async function subscriber(socket: string): Promise<DBusPeer> {
  const peer = await client(socket);
  await peer.callBus('AddMatch', 's', [`type='signal',interface='${SERVICE}'`]);
  return peer;
}

/** SIGNALS signals from the service to one subscribed connection. */
async function floodRound(path: BenchPath): Promise<Tally> {
  const into = tally();
  const peer = await subscriber(path.socket);
  const cpuBefore = relayCpu(path);
  const start = nowMs();
  await floodOnce(peer, SIGNALS);
  into.seconds = (nowMs() - start) / 1000;
  into.relayCpuMs = relayCpu(path) - cpuBefore;
  into.count = SIGNALS;
  peer.close();
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

/** A relay's socket under callgrind, and how to zero its counters. */
interface CountedRelay {
  socket: string;
  zero(): Promise<void>;
}

/**
 * What callgrind counts, on a relay's socket, with only the clients the timed rounds have connected (GLib's loop
 * polls every connection on each wake-up). Every workload is warmed up first (the JIT above all) over connections
 * that then close. Its own clients connect, make a few calls, and the counters are zeroed again: the handshakes are
 * not counted. They close when the next workload starts, before its counters are zeroed. Each workload is counted
 * COUNTS times in a row: the daemon's garbage collections fall into one count or another, so the median is given.
 */
function instructionWorkloads(kinds: ('calls' | 'flood')[]): Workload<CountedRelay>[] {
  let open: DBusPeer[] = [];
  const connect = async (socket: string, clients: number, subscribe: boolean) => {
    for (const peer of open.splice(0)) peer.close();
    const peers: DBusPeer[] = [];
    for (let i = 0; i < clients; i += 1) peers.push(await (subscribe ? subscriber : client)(socket));
    open = peers;
    return peers;
  };
  const calls = (unit: string, clients: number): Workload<CountedRelay> => {
    const each = (peers: DBusPeer[], total: number) =>
      Promise.all(peers.map((peer) => callLoop(peer, total / clients, [])));
    return {
      unit,
      units: COUNTED_CALLS,
      async warmUp({ socket }) {
        await each(await connect(socket, clients, false), COUNTED_CALLS / 2);
      },
      async run({ socket, zero }) {
        const peers = await connect(socket, clients, false);
        await each(peers, 2 * clients);
        await zero();
        await each(peers, COUNTED_CALLS);
      },
    };
  };
  const flood = (unit: string): Workload<CountedRelay> => ({
    unit,
    units: COUNTED_SIGNALS,
    async warmUp({ socket }) {
      const [peer] = (await connect(socket, 1, true)) as [DBusPeer];
      await floodOnce(peer, COUNTED_SIGNALS / 5);
    },
    async run({ socket, zero }) {
      const [peer] = (await connect(socket, 1, true)) as [DBusPeer];
      await floodOnce(peer, 10);
      await zero();
      await floodOnce(peer, COUNTED_SIGNALS);
    },
  });
  return Array.from({ length: COUNTS }, (_, count) =>
    kinds.flatMap((kind) =>
      kind === 'flood'
        ? [flood(`per signal #${count + 1}`)]
        : [
            calls(`per call (1 client) #${count + 1}`, 1),
            calls(`per call (${CONCURRENT_CLIENTS} clients) #${count + 1}`, CONCURRENT_CLIENTS),
          ],
    ),
  ).flat();
}

/** The median of each workload's counts (their units without the count's number). */
function medianCounts(counts: Record<string, InstructionCounts>): Record<string, InstructionCounts> {
  return Object.fromEntries(
    Object.entries(counts).map(([relay, byUnit]) => {
      const units = new Map<string, number[]>();
      for (const [unit, count] of Object.entries(byUnit)) {
        const kind = unit.replace(/ #\d+$/, '');
        units.set(kind, [...(units.get(kind) ?? []), count]);
      }
      return [relay, Object.fromEntries([...units].map(([unit, all]) => [unit, spread(all, 0).median]))];
    }),
  );
}

/** The daemon with one link (plain or under the policy) or xdg-dbus-proxy (plain or filtered), under callgrind. */
function relaysUnderCallgrind(
  dir: string,
  busPath: string,
  filtered: boolean,
): Record<string, (wrapper: string[]) => Promise<RelayUnderTest<CountedRelay>>> {
  const suffix = filtered ? '-filtered' : '';
  const counted = (socket: string, pid: number): CountedRelay => ({
    socket,
    zero: () => callgrind([pid], '-z'),
  });
  return {
    [filtered ? POLICED : 'pv-xconnect']: async (wrapper) => {
      const socket = join(dir, `cg-mesh${suffix}.sock`);
      const daemon = await daemonUnderCallgrind(
        wrapper,
        join(dir, `cg-ctrl${suffix}.sock`),
        [benchLink(busPath, socket, filtered)],
        [socket],
      );
      return { pids: [daemon.pid], endpoints: counted(socket, daemon.pid), stop: daemon.stop };
    },
    [filtered ? FILTERED_PROXY : 'xdg-dbus-proxy']: async (wrapper) => {
      const socket = join(dir, `cg-proxy${suffix}.sock`);
      const proxy = startProxy(busPath, socket, filtered ? proxyFilter() : [], wrapper);
      await whenExisting([socket], 'xdg-dbus-proxy');
      const pid = proxy.pid as number;
      return { pids: [pid], endpoints: counted(socket, pid), stop: () => stopProcess(proxy) };
    },
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
  let countsInARow: Record<string, InstructionCounts> = {};
  try {
    writeFileSync(join(dir, 'bus.conf'), busConfig(busPath));
    const busArgs = [`--config-file=${join(dir, 'bus.conf')}`, '--nofork', '--nopidfile'];
    children.push(spawn('dbus-daemon', busArgs, { stdio: 'ignore' }));
    await eventually(() => existsSync(busPath), 10_000, 'dbus-daemon');
    children.push(await startService(busPath));
    ctrl.setGraph([
      benchLink(busPath, socketOf('mesh'), false),
      benchLink(busPath, socketOf('mesh-policy'), true),
    ]);
    await ctrl.start();
    // Polls at the daemon's default interval, as on a device: every poll is CPU the daemon's figures count.
    const daemon = startDaemonProcess(ctrl.socketPath, 5);
    const proxy = startProxy(busPath, socketOf('proxy'), []);
    const filtered = startProxy(busPath, socketOf('proxy-filtered'), proxyFilter());
    children.push(daemon, proxy, filtered);
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
    // Only the bus and the service stay, for the instruction counts.
    for (const child of children.splice(2).reverse()) await stopProcess(child);
    // Every workload on the unfiltered relays; the calls on the filtered ones (the policy's cost).
    countsInARow = {
      ...(await instructionCounts(
        dir,
        relaysUnderCallgrind(dir, busPath, false),
        instructionWorkloads(['calls', 'flood']),
      )),
      ...(await instructionCounts(
        dir,
        relaysUnderCallgrind(dir, busPath, true),
        instructionWorkloads(['calls']),
      )),
    };
  } finally {
    // The bus goes last: the others are its clients.
    for (const child of children.reverse()) await stopProcess(child);
    await ctrl.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const instructions = medianCounts(countsInARow);
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
    note: 'paths take turns, each round starting one path further; rates and CPU are median (min–max) over the rounds, latencies pool all rounds; relay CPU is user + system of the relaying process (the daemon, polling at its default 5 s; xdg-dbus-proxy). Clients: testkit/dbus-peer.ts, service: testkit/dbus-echo-service.ts',
    instructions: CALLGRIND_AVAILABLE
      ? `callgrind, each relay on its own: ${COUNTED_CALLS} calls per workload, ${COUNTED_SIGNALS} signals, after the clients connected and warmed up; each workload counted ${COUNTS} times in a row, median; the filtered relays: calls only, no flood`
      : 'not measured (valgrind missing)',
  };
  // Instructions per unit over xdg-dbus-proxy's (filtered over filtered): the figure the machine's load does not move.
  const instructionRatio = (path: string, anchor: string) =>
    Object.fromEntries(
      Object.entries(instructions[path] ?? {}).map(([unit, count]) => [
        unit,
        round(count / (instructions[anchor]?.[unit] ?? Number.NaN), 2),
      ]),
    );
  const instructionRatios = {
    [`${ours} vs ${proxy}`]: instructionRatio(ours, proxy),
    [`${POLICED} vs ${FILTERED_PROXY}`]: instructionRatio(POLICED, FILTERED_PROXY),
  };
  const paths = Object.fromEntries([...rounds].map(([path, results]) => [path, summary(results)]));
  const shown = (value: number | Spread | undefined) =>
    value === undefined ? '–' : typeof value === 'number' ? value : showSpread(value);
  const rows = Object.entries(paths).map(([path, result]) => ({
    path,
    ...Object.fromEntries(Object.entries(result).map(([key, value]) => [key, shown(value)])),
  }));
  // The machine is shared: the load before and after says how much the numbers were disturbed.
  record(
    'dbus',
    { method, load: load(), paths, ratios, instructions, instructionRatios, countsInARow },
    rows,
  );
  console.log(
    'ratios:',
    Object.fromEntries(Object.entries(ratios).map(([key, value]) => [key, shown(value)])),
  );
  console.log('instructions:', instructions, instructionRatios);
}
