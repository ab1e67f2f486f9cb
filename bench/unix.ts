// `npm run bench -- unix`: the unix mediator (the real pv-xconnect process) against a direct connection, socat as the
// same relay, and upstream's C pv-xconnect when PVX_BENCH_UPSTREAM names it (bench/upstream.ts): throughput, the
// round trip of a 64-byte ping-pong, connection setup, and the relay's CPU time per GiB, per round trip and per
// connection (socat's forked children included). Both daemons are also measured with the provider inside a
// container (its own mount and pid namespaces, testkit/container.ts), and with both ends on the host (`_pv_`), as
// the comparison with upstream did. The paths take turns, ROUNDS times; every figure is the median of the
// rounds with their spread. Then the instructions each relay executes per unit of work, under callgrind
// (bench/instructions.ts), and reconcile time and the daemon's memory per link.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { hostNamespace } from '../daemon/plumbing.js';
import { Reconciler } from '../daemon/reconciler.js';
import { silentLogger } from '../log/logger.js';
import { DEFAULT_MEDIATOR_SETTINGS, defaultMediators } from '../mediators/registry.js';
import { DEFAULT_RELAY_LIMITS } from '../mediators/relay.js';
import { PACKAGE_ROOT } from '../native/package-root.js';
import { type Container, startContainer } from '../testkit/container.js';
import { startDaemonProcess, stopProcess } from '../testkit/daemon-process.js';
import { FakeCtrl } from '../testkit/fake-ctrl.js';
import { eventually, type GraphEntry, graphEntry } from '../testkit/mesh.js';
import {
  connect,
  hostLink,
  interleaved,
  nowMs,
  paired,
  pairedExcess,
  percentile,
  record,
  relayedConnections,
  round,
  rssKiB,
  setupRate,
  showSpread,
  spread,
  startSocat,
  treeCpuMs,
  watchLoad,
} from './harness.js';
import {
  daemonUnderCallgrind,
  type InstructionCounts,
  instructionCounts,
  type RelayUnderTest,
  type Workload,
  whenExisting,
} from './instructions.js';
import { startUpstream, UPSTREAM_BINARY, type Upstream } from './upstream.js';

const ROUNDS = 5;
/** Per path and round. */
const THROUGHPUT_BYTES = 256 << 20;
const WRITE_SIZE = 64 * 1024;
const PING_PONGS = 5000;
const SETUPS = 500;
const IDLE_LINKS = 1000;
/** Where the provider listens inside its container. */
const CONTAINER_DIR = '/run/pvx-bench';
const PEER_SCRIPT = join(PACKAGE_ROOT, 'dist', 'bench', 'unix-peer.js');

interface Endpoints {
  echo: string;
  sink: string;
}

interface RelayPath {
  name: string;
  endpoints: Endpoints;
  /** The processes whose CPU time is the relay's (none for direct). */
  relayPids: number[];
}

/** A provider process (unix-peer.ts) listening in `dir`, once it is ready. */
async function startPeer(spawnPeer: (argv: string[]) => ChildProcess, dir: string): Promise<ChildProcess> {
  const child = spawnPeer([process.execPath, PEER_SCRIPT, dir, String(THROUGHPUT_BYTES)]);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the bench's provider exited (${code})`)));
  });
  return child;
}

function relayCpuMs(path: RelayPath): number {
  return path.relayPids.reduce((sum, pid) => sum + treeCpuMs(pid), 0);
}

/** Runs `work` and returns its result with the CPU ms the path's relay used meanwhile (NaN for direct). */
async function withCpu<T>(path: RelayPath, work: () => Promise<T>): Promise<{ result: T; cpuMs: number }> {
  const before = relayCpuMs(path);
  const result = await work();
  const cpuMs = path.relayPids.length === 0 ? Number.NaN : relayCpuMs(path) - before;
  return { result, cpuMs };
}

/** MiB/s of THROUGHPUT_BYTES in WRITE_SIZE writes, until the sink says it has them all. */
async function throughput(path: string): Promise<number> {
  const socket = await connect(path);
  const done = new Promise((resolve) => socket.once('data', resolve));
  const chunk = Buffer.alloc(WRITE_SIZE, 0x5a);
  const start = nowMs();
  for (let sent = 0; sent < THROUGHPUT_BYTES; sent += chunk.length) {
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  await done;
  const seconds = (nowMs() - start) / 1000;
  socket.destroy();
  return THROUGHPUT_BYTES / (1 << 20) / seconds;
}

/** µs of each 64-byte round trip, sorted. */
async function pingPong(path: string, count: number): Promise<number[]> {
  const socket = await connect(path);
  const message = Buffer.alloc(64, 1);
  const samples: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const start = nowMs();
    await new Promise<void>((resolve) => {
      let got = 0;
      const onData = (data: Buffer) => {
        got += data.length;
        if (got >= message.length) {
          socket.off('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
      socket.write(message);
    });
    samples.push((nowMs() - start) * 1000);
  }
  socket.destroy();
  return samples.sort((a, b) => a - b);
}

interface Round {
  mibPerSecond: number;
  cpuSecondsPerGiB: number;
  p50Us: number;
  p99Us: number;
  cpuUsPerRoundTrip: number;
  connectionsPerSecond: number;
  cpuUsPerConnection: number;
}

async function measureRound(path: RelayPath): Promise<Round> {
  const moved = await withCpu(path, () => throughput(path.endpoints.sink));
  const latency = await withCpu(path, () => pingPong(path.endpoints.echo, PING_PONGS));
  const setups = await withCpu(path, () => setupRate(path.endpoints.echo, SETUPS));
  return {
    mibPerSecond: moved.result,
    cpuSecondsPerGiB: moved.cpuMs / 1000 / (THROUGHPUT_BYTES / (1 << 30)),
    p50Us: percentile(latency.result, 50),
    p99Us: percentile(latency.result, 99),
    cpuUsPerRoundTrip: (latency.cpuMs * 1000) / PING_PONGS,
    connectionsPerSecond: setups.result,
    cpuUsPerConnection: (setups.cpuMs * 1000) / SETUPS,
  };
}

async function reconcileTimes(dir: string, providerPath: string) {
  const rows = [];
  for (const size of [10, 100, 1000]) {
    const reconciler = new Reconciler(
      defaultMediators(DEFAULT_MEDIATOR_SETTINGS, hostNamespace()),
      {
        maxConnections: 1024,
        ...DEFAULT_RELAY_LIMITS,
        retryBaseMs: 1000,
        retryMaxMs: 30_000,
      },
      silentLogger,
    );
    const { parseGraph } = await import('../protocols/graph/xconnect-graph.js');
    const graph = parseGraph(
      JSON.stringify(
        Array.from({ length: size }, (_, i) =>
          hostLink(`r${i}`, providerPath, join(dir, `r${size}-${i}.sock`)),
        ),
      ),
    ).links;
    let start = nowMs();
    await reconciler.apply(graph);
    const firstMs = nowMs() - start;
    start = nowMs();
    const again = await reconciler.apply(graph);
    const unchangedMs = nowMs() - start;
    if (again.unchanged !== size) throw new Error('unchanged pass recreated links');
    await reconciler.shutdown();
    rows.push({
      links: size,
      firstMs: round(firstMs, 2),
      unchangedMs: round(unchangedMs, 3),
      ratio: round(unchangedMs / firstMs, 4),
    });
  }
  return rows;
}

async function memory(dir: string, providerPath: string) {
  const ctrlPath = join(dir, 'mem-ctrl.sock');
  const ctrl = await FakeCtrl.serving(ctrlPath, []);
  const daemon = startDaemonProcess(ctrlPath, 1);
  const pid = daemon.pid as number;
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const baseline = rssKiB(pid);
  ctrl.setGraph(
    Array.from({ length: IDLE_LINKS }, (_, i) => hostLink(`m${i}`, providerPath, join(dir, `m${i}.sock`))),
  );
  await eventually(() => existsSync(join(dir, `m${IDLE_LINKS - 1}.sock`)), 60_000, 'idle links');
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const idle = rssKiB(pid);
  const sockets = await relayedConnections(
    Array.from({ length: IDLE_LINKS }, (_, i) => join(dir, `m${i}.sock`)),
  );
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const open = rssKiB(pid);
  for (const socket of sockets) socket.destroy();
  await stopProcess(daemon);
  await ctrl.stop();
  return {
    baselineKiB: baseline,
    idleLinksKiB: idle,
    openConnectionsKiB: open,
    perIdleLinkKiB: round((idle - baseline) / IDLE_LINKS, 2),
    perOpenConnectionKiB: round((open - idle) / IDLE_LINKS, 2),
  };
}

/** The links of one daemon: both ends on the host, and the provider in the container. */
function meshLinks(dir: string, prefix: string, container: Container): GraphEntry[] {
  const provider = { pid: container.pid };
  const inContainer = (name: string) =>
    graphEntry('unix', null, provider, {
      name: `${name}-ct`,
      socket: `${CONTAINER_DIR}/${name}.sock`,
      target: join(dir, `${prefix}-${name}-ct.sock`),
    });
  return [
    hostLink('echo', join(dir, 'echo.sock'), join(dir, `${prefix}-echo.sock`)),
    hostLink('sink', join(dir, 'sink.sock'), join(dir, `${prefix}-sink.sock`)),
    inContainer('echo'),
    inContainer('sink'),
  ];
}

const endpointsOf = (dir: string, prefix: string, suffix = ''): Endpoints => ({
  echo: join(dir, `${prefix}-echo${suffix}.sock`),
  sink: join(dir, `${prefix}-sink${suffix}.sock`),
});

/** What callgrind counts, per unit; smaller than the timed rounds (everything runs ~50× slower under it). */
const WORKLOADS: Workload<Endpoints>[] = [
  {
    unit: 'per round trip',
    units: 1000,
    run: ({ echo }) => pingPong(echo, 1000),
    warmUp: ({ echo }) => pingPong(echo, 300),
  },
  {
    unit: 'per connection',
    units: 300,
    run: ({ echo }) => setupRate(echo, 300),
    warmUp: ({ echo }) => setupRate(echo, 100),
    // V8 compiles the daemon's accept path over the first few hundred connections: a count after 100 was mostly
    // that compiling (35 569 instructions per connection against 15 200 after 1000).
    jitWarmUp: ({ echo }) => setupRate(echo, 1000),
  },
  {
    unit: 'per GiB (millions)',
    units: (THROUGHPUT_BYTES / (1 << 30)) * 1e6,
    run: ({ sink }) => throughput(sink),
  },
];

/** Each relay with both ends on the host, started under callgrind. */
function relaysUnderCallgrind(
  dir: string,
): Record<string, (wrapper: string[]) => Promise<RelayUnderTest<Endpoints>>> {
  const provider = { echo: join(dir, 'echo.sock'), sink: join(dir, 'sink.sock') };
  const relays: Record<string, (wrapper: string[]) => Promise<RelayUnderTest<Endpoints>>> = {
    'pv-xconnect': async (wrapper) => {
      const links = [
        hostLink('echo', provider.echo, join(dir, 'cg-echo.sock')),
        hostLink('sink', provider.sink, join(dir, 'cg-sink.sock')),
      ];
      const endpoints = endpointsOf(dir, 'cg');
      const daemon = await daemonUnderCallgrind(
        wrapper,
        join(dir, 'cg-ctrl.sock'),
        links,
        Object.values(endpoints),
      );
      return { pids: [daemon.pid], jit: true, endpoints, stop: daemon.stop };
    },
    socat: async (wrapper) => {
      const socats = [
        startSocat(join(dir, 'cg-socat-echo.sock'), provider.echo, wrapper),
        startSocat(join(dir, 'cg-socat-sink.sock'), provider.sink, wrapper),
      ];
      const endpoints = endpointsOf(dir, 'cg-socat');
      await whenExisting(Object.values(endpoints), 'socat');
      return {
        pids: socats.map((socat) => socat.pid as number),
        endpoints,
        stop: async () => {
          for (const socat of socats) await stopProcess(socat);
        },
      };
    },
  };
  if (UPSTREAM_BINARY)
    relays['upstream C'] = async (wrapper) => {
      const links = [
        hostLink('echo', provider.echo, join(dir, 'cg-upstream-echo.sock')),
        hostLink('sink', provider.sink, join(dir, 'cg-upstream-sink.sock')),
      ];
      const upstream = (await startUpstream(dir, links, wrapper)) as Upstream;
      return {
        pids: [upstream.process.pid as number],
        endpoints: endpointsOf(dir, 'cg-upstream'),
        stop: upstream.stop,
      };
    };
  return relays;
}

export async function run(): Promise<void> {
  const load = watchLoad();
  const dir = mkdtempSync('/dev/shm/pvx-bench-unix-');
  const stops: (() => Promise<void>)[] = [];
  let rounds: Map<string, Round[]>;
  let instructions: Record<string, InstructionCounts> = {};
  try {
    const hostPeer = await startPeer((argv) => spawn(argv[0] as string, argv.slice(1)), dir);
    stops.push(() => stopProcess(hostPeer));
    const container = await startContainer({ setup: `mkdir -p ${CONTAINER_DIR}` });
    stops.push(() => container.stop());
    await startPeer((argv) => container.spawn(argv), CONTAINER_DIR);

    const ctrl = await FakeCtrl.serving(join(dir, 'ctrl.sock'), meshLinks(dir, 'mesh', container));
    stops.push(() => ctrl.stop());
    // Polls at the default interval: an unchanged poll costs little, but it would count as the relay's CPU.
    const daemon = startDaemonProcess(ctrl.socketPath, 5);
    stops.push(() => stopProcess(daemon));
    const socats = [
      startSocat(join(dir, 'socat-echo.sock'), join(dir, 'echo.sock')),
      startSocat(join(dir, 'socat-sink.sock'), join(dir, 'sink.sock')),
    ];
    for (const socat of socats) stops.push(() => stopProcess(socat));
    const upstream: Upstream | null = await startUpstream(dir, meshLinks(dir, 'upstream', container));
    if (upstream) stops.push(() => upstream.stop());
    const mesh = endpointsOf(dir, 'mesh');
    await eventually(
      () => [...Object.values(mesh), ...Object.values(endpointsOf(dir, 'mesh', '-ct'))].every(existsSync),
      10_000,
      'the relays',
    );
    await eventually(
      () => [join(dir, 'socat-echo.sock'), join(dir, 'socat-sink.sock')].every(existsSync),
      10_000,
      'socat',
    );

    const daemonPid = daemon.pid as number;
    const paths: RelayPath[] = [
      {
        name: 'direct',
        endpoints: { echo: join(dir, 'echo.sock'), sink: join(dir, 'sink.sock') },
        relayPids: [],
      },
      { name: 'pv-xconnect', endpoints: mesh, relayPids: [daemonPid] },
      {
        name: 'pv-xconnect, provider in a container',
        endpoints: endpointsOf(dir, 'mesh', '-ct'),
        relayPids: [daemonPid],
      },
      {
        name: 'socat',
        endpoints: endpointsOf(dir, 'socat'),
        relayPids: socats.map((socat) => socat.pid as number),
      },
    ];
    if (upstream) {
      const upstreamPid = upstream.process.pid as number;
      paths.push(
        { name: 'upstream C', endpoints: endpointsOf(dir, 'upstream'), relayPids: [upstreamPid] },
        {
          name: 'upstream C, provider in a container',
          endpoints: endpointsOf(dir, 'upstream', '-ct'),
          relayPids: [upstreamPid],
        },
      );
    }
    // Warm-up: every path once, not counted (JIT, page cache, the first connections).
    for (const path of paths) {
      await throughput(path.endpoints.sink);
      await pingPong(path.endpoints.echo, 200);
      await setupRate(path.endpoints.echo, 100);
    }
    rounds = await interleaved(ROUNDS, paths, measureRound);
    // Only the host peer and the container stay, for the instruction counts.
    for (const stop of stops.splice(2).reverse()) await stop();
    instructions = await instructionCounts(dir, relaysUnderCallgrind(dir), WORKLOADS);
  } finally {
    for (const stop of stops.reverse()) await stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const rows = [...rounds.entries()].map(([path, results]) => {
    const of = (pick: (round: Round) => number, digits = 1) => spread(results.map(pick), digits);
    return {
      path,
      'MiB/s': of((r) => r.mibPerSecond, 0),
      'relay CPU s per GiB': of((r) => r.cpuSecondsPerGiB, 2),
      'p50 µs': of((r) => r.p50Us),
      'p99 µs': of((r) => r.p99Us),
      'relay CPU µs per round trip': of((r) => r.cpuUsPerRoundTrip),
      'connections/s': of((r) => r.connectionsPerSecond, 0),
      'relay CPU µs per connection': of((r) => r.cpuUsPerConnection),
    };
  });
  const ours = 'pv-xconnect';
  const addedP50 = (path: string) => pairedExcess(rounds, path, 'direct', (r) => r.p50Us);
  const ratios = {
    'setup rate vs direct': paired(rounds, ours, 'direct', (r) => r.connectionsPerSecond),
    'setup rate vs upstream C': paired(rounds, ours, 'upstream C', (r) => r.connectionsPerSecond),
    'setup rate (provider in a container) vs upstream C (same)': paired(
      rounds,
      `${ours}, provider in a container`,
      'upstream C, provider in a container',
      (r) => r.connectionsPerSecond,
    ),
    'added p50 µs over direct': addedP50(ours),
    'added p50 µs over direct (provider in a container)': addedP50(`${ours}, provider in a container`),
    'added p50 µs over direct, upstream C': addedP50('upstream C'),
    'added p50 µs over direct, socat': addedP50('socat'),
    'throughput vs direct': paired(rounds, ours, 'direct', (r) => r.mibPerSecond),
    'throughput vs socat': paired(rounds, ours, 'socat', (r) => r.mibPerSecond),
    'throughput vs upstream C': paired(rounds, ours, 'upstream C', (r) => r.mibPerSecond),
    'CPU per GiB vs upstream C': paired(rounds, ours, 'upstream C', (r) => r.cpuSecondsPerGiB),
    'CPU per connection vs upstream C': paired(rounds, ours, 'upstream C', (r) => r.cpuUsPerConnection),
    'CPU per round trip vs upstream C': paired(rounds, ours, 'upstream C', (r) => r.cpuUsPerRoundTrip),
  };

  const reconcileDir = mkdtempSync('/dev/shm/pvx-bench-unix-');
  const provider = await startPeer((argv) => spawn(argv[0] as string, argv.slice(1)), reconcileDir);
  const reconcile = await reconcileTimes(reconcileDir, join(reconcileDir, 'echo.sock'));
  const rss = await memory(reconcileDir, join(reconcileDir, 'echo.sock'));
  await stopProcess(provider);
  rmSync(reconcileDir, { recursive: true, force: true });

  record(
    'unix',
    {
      method: {
        rounds: ROUNDS,
        perRound: {
          throughputBytes: THROUGHPUT_BYTES,
          writeSize: WRITE_SIZE,
          pingPongs: PING_PONGS,
          setups: SETUPS,
        },
        note: 'paths interleaved, each round starting one path further; figures are median (min–max) over the rounds; relay CPU is user + system of the relay process and its children (socat forks per connection); "provider in a container": its own mount and pid namespaces (unshare), host-side consumer',
        upstream: UPSTREAM_BINARY
          ? 'PVX_BENCH_UPSTREAM (see bench/README.md)'
          : 'not measured (PVX_BENCH_UPSTREAM unset)',
      },
      load: load(),
      paths: rows,
      ratios,
      instructions,
      reconcile,
      rss,
    },
    rows.map((row) =>
      Object.fromEntries(
        Object.entries(row).map(([key, value]) => [
          key,
          typeof value === 'string' ? value : showSpread(value),
        ]),
      ),
    ),
  );
  console.log(
    'ratios:',
    Object.fromEntries(Object.entries(ratios).map(([key, value]) => [key, value && showSpread(value)])),
  );
  console.log('instructions:', instructions);
  console.table(reconcile);
  console.log('daemon RSS:', rss);
}
