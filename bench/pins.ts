// `npm run bench -- pins`: what pinned namespaces cost and save.
//
// 1. Polls of 1000 container links (testkit/container.ts containers: own mount and pid namespaces), the
//    consumers spread over 1 and over 100 containers: the first reconcile (pins, plants, dials) against an
//    unchanged one, which does the liveness check of every pinned process and nothing else; and that check alone.
// 2. Connection setup rate through the real daemon process (connect, one byte echoed, close), for a host-side link
//    and a container link, this build against another one (PVX_BASELINE=<a built checkout>, e.g. the main branch):
//    rounds alternate between the two builds so that both see the same load.
// Needs root. Writes bench/results/pins.json.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server, Socket } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { hostNamespace } from '../daemon/plumbing.js';
import { Reconciler } from '../daemon/reconciler.js';
import { silentLogger } from '../log/logger.js';
import { DEFAULT_MEDIATOR_SETTINGS, defaultMediators } from '../mediators/registry.js';
import { DEFAULT_RELAY_LIMITS } from '../mediators/relay.js';
import { listenIn, PinnedNamespace } from '../native/namespace.js';
import { PACKAGE_ROOT } from '../native/package-root.js';
import { type GraphEntry, parseGraph } from '../protocols/graph/xconnect-graph.js';
import { type Container, startContainer } from '../testkit/container.js';
import { startDaemonProcess, stopProcess } from '../testkit/daemon-process.js';
import { FakeCtrl } from '../testkit/fake-ctrl.js';
import { eventually } from '../testkit/mesh.js';
import { echo, hostLink, nowMs, percentile, record, round, setupRate } from './harness.js';

const LINKS = 1000;
const UNCHANGED_POLLS = 20;
const SWEEPS = 200;
const SETUPS_PER_ROUND = 300;
const ROUNDS = 6;
const PROVIDER_SOCKET = '/run/p/echo.sock';

/** An echo server on a socket planted in `pid`'s namespace (0: the host). */
async function echoServer(pid: number, path: string): Promise<Server> {
  const { fd } = await listenIn({ pid, path });
  const server = createServer(echo);
  await new Promise<void>((resolve) => server.listen({ fd }, resolve));
  return server;
}

function link(consumer: Container, provider: Container, name: string): GraphEntry {
  return {
    consumer: `c${consumer.pid}`,
    consumer_pid: consumer.pid,
    provider: 'svc',
    provider_pid: provider.pid,
    name,
    type: 'unix',
    socket: PROVIDER_SOCKET,
    target: null,
  };
}

const median = (values: number[]) =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  );

async function pollCost(provider: Container, consumers: Container[]) {
  const graph = parseGraph(
    JSON.stringify(
      Array.from({ length: LINKS }, (_, i) =>
        link(consumers[i % consumers.length] as Container, provider, `l${i}`),
      ),
    ),
  ).links;
  const reconciler = new Reconciler(
    defaultMediators(DEFAULT_MEDIATOR_SETTINGS, hostNamespace()),
    { maxConnections: 1024, ...DEFAULT_RELAY_LIMITS, retryBaseMs: 1000, retryMaxMs: 30_000 },
    silentLogger,
  );
  let start = nowMs();
  await reconciler.apply(graph);
  const firstMs = nowMs() - start;
  const notActive = reconciler.list().filter((l) => l.state !== 'active');
  if (notActive.length > 0) throw new Error(`${notActive.length} links not active: ${notActive[0]?.error}`);
  const unchanged: number[] = [];
  for (let i = 0; i < UNCHANGED_POLLS; i += 1) {
    start = nowMs();
    const result = await reconciler.apply(graph);
    unchanged.push(nowMs() - start);
    if (result.unchanged !== LINKS) throw new Error('an unchanged poll changed links');
  }
  const sweeps: number[] = [];
  for (let i = 0; i < SWEEPS; i += 1) {
    start = nowMs();
    reconciler.pins.sweep();
    sweeps.push(nowMs() - start);
  }
  const pinned = reconciler.pins.size;
  await reconciler.shutdown();
  const unchangedMs = median(unchanged);
  return {
    links: LINKS,
    consumerContainers: consumers.length,
    pinnedProcesses: pinned,
    firstPollMs: round(firstMs, 1),
    unchangedPollMs: round(unchangedMs, 3),
    unchangedOverFirst: round(unchangedMs / firstMs, 4),
    livenessSweepMs: round(median(sweeps), 4),
    livenessPerPinUs: round((median(sweeps) * 1000) / pinned, 2),
  };
}

/** Setup rates of one build's daemon, for a host-side and a container link; the daemon runs only meanwhile. */
async function setupRound(build: string, dir: string, provider: Container, consumer: Container) {
  const ctrlPath = join(dir, `ctrl-${Math.random().toString(36).slice(2)}.sock`);
  const hostTarget = join(dir, `mesh-${Math.random().toString(36).slice(2)}.sock`);
  const graph = [
    { ...link(consumer, provider, 'setup'), target: null },
    hostLink('setup-host', join(dir, 'echo.sock'), hostTarget),
  ];
  const ctrl = await FakeCtrl.serving(ctrlPath, graph);
  const daemon = startDaemonProcess(ctrlPath, 1, join(build, 'dist', 'daemon', 'cli.js'));
  // The consumer's end is dialled inside its namespace, as a process of the container would (native operations:
  // never a path through /proc/<pid>/root); the pin's worker adds the same hop for every build.
  const inConsumer = PinnedNamespace.pin(consumer.pid);
  const containerTarget = '/run/pv/services/setup.sock';
  try {
    await eventually(
      async () =>
        daemon.exitCode === null &&
        existsSocket(hostTarget) &&
        (await inConsumer.stat(containerTarget).then(
          (stat) => stat.type === 'socket',
          () => false,
        )),
      20_000,
      `the daemon of ${build}`,
    );
    return {
      host: await setupRate(hostTarget, SETUPS_PER_ROUND),
      container: await setupRate(
        async () =>
          new Socket({ fd: await inConsumer.connect(containerTarget), readable: true, writable: true }),
        SETUPS_PER_ROUND,
      ),
    };
  } finally {
    inConsumer.release();
    await stopProcess(daemon);
    await ctrl.stop();
  }
}

function existsSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

export async function run(): Promise<void> {
  const loadBefore = round(loadavg()[0] ?? 0, 2);
  const dir = mkdtempSync('/dev/shm/pvx-bench-pins-');
  const provider = await startContainer();
  const consumers = await Promise.all(Array.from({ length: 100 }, () => startContainer()));
  const servers = [
    await echoServer(provider.pid, PROVIDER_SOCKET),
    await echoServer(0, join(dir, 'echo.sock')),
  ];
  try {
    const polls = [await pollCost(provider, consumers.slice(0, 1)), await pollCost(provider, consumers)];

    const baseline = process.env.PVX_BASELINE;
    const builds = baseline ? { this: PACKAGE_ROOT, baseline } : { this: PACKAGE_ROOT };
    const rates: Record<string, { host: number[]; container: number[] }> = {};
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const [name, build] of Object.entries(builds)) {
        const rate = await setupRound(build, dir, provider, consumers[0] as Container);
        rates[name] ??= { host: [], container: [] };
        rates[name].host.push(rate.host);
        rates[name].container.push(rate.container);
      }
    }
    const setup = Object.fromEntries(
      Object.entries(rates).map(([name, rate]) => [
        name,
        { hostPerSecond: round(median(rate.host)), containerPerSecond: round(median(rate.container)) },
      ]),
    );
    const ratios = setup.baseline
      ? {
          hostVsBaseline: round((setup.this?.hostPerSecond ?? 0) / setup.baseline.hostPerSecond, 2),
          containerVsBaseline: round(
            (setup.this?.containerPerSecond ?? 0) / setup.baseline.containerPerSecond,
            2,
          ),
        }
      : null;
    record(
      'pins',
      {
        description:
          'Poll of 1000 container links: first vs unchanged (liveness check of every pinned process), and the check alone; connection setup rate (connect, 1 byte echoed, close) through the daemon process, median of rounds alternating between this build and PVX_BASELINE',
        loadAverage1m: { before: loadBefore, after: round(loadavg()[0] ?? 0, 2) },
        polls,
        setup,
        baseline: baseline ?? null,
        ratios,
      },
      [
        ...polls.map((p) => ({ what: `poll, ${p.consumerContainers} consumer container(s)`, ...p })),
        ...Object.entries(setup).map(([name, s]) => ({ what: `setup/s, ${name}`, ...s })),
      ],
    );
    if (ratios) console.log('setup rate vs baseline:', ratios);
  } finally {
    for (const server of servers) server.close();
    await Promise.all([provider, ...consumers].map((c) => c.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}
