// `npm run bench -- unix`: the unix mediator (the real pv-xconnect process) vs a direct connection vs socat as
// the same relay; reconcile time by graph size; the daemon's memory per idle link and per open connection.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { hostNamespace } from '../daemon/plumbing.js';
import { Reconciler } from '../daemon/reconciler.js';
import { silentLogger } from '../log/logger.js';
import { DEFAULT_MEDIATOR_SETTINGS, defaultMediators } from '../mediators/registry.js';
import { DEFAULT_RELAY_LIMITS } from '../mediators/relay.js';
import { startDaemonProcess, stopProcess } from '../testkit/daemon-process.js';
import { FakeCtrl } from '../testkit/fake-ctrl.js';
import { eventually } from '../testkit/mesh.js';
import {
  connect,
  echo,
  hostLink,
  listen,
  nowMs,
  percentile,
  record,
  relayedConnections,
  round,
  rssKiB,
  setupRate,
  startSocat,
} from './harness.js';

const THROUGHPUT_BYTES = 1 << 30;
const WRITE_SIZE = 64 * 1024;
const PING_PONGS = 5000;
const SETUPS = 1000;
const IDLE_LINKS = 1000;

/** Sink provider: reports every byte it receives to whoever is measuring. */
let sinkReceived = 0;
const sink = (socket: Socket) => {
  socket.on('data', (data: Buffer) => {
    sinkReceived += data.length;
  });
  socket.on('error', () => {});
};

async function throughput(path: string): Promise<number> {
  const socket = await connect(path);
  const chunk = Buffer.alloc(WRITE_SIZE, 0x5a);
  sinkReceived = 0;
  const start = nowMs();
  let sent = 0;
  while (sent < THROUGHPUT_BYTES) {
    sent += chunk.length;
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  await eventually(() => sinkReceived >= THROUGHPUT_BYTES, 120_000, 'the sink');
  const seconds = (nowMs() - start) / 1000;
  socket.destroy();
  return THROUGHPUT_BYTES / (1 << 20) / seconds;
}

async function pingPong(path: string): Promise<number[]> {
  const socket = await connect(path);
  const message = Buffer.alloc(64, 1);
  const samples: number[] = [];
  for (let i = 0; i < PING_PONGS; i += 1) {
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

export async function run(): Promise<void> {
  const dir = mkdtempSync('/dev/shm/pvx-bench-unix-');
  const echoPath = join(dir, 'echo.sock');
  const sinkPath = join(dir, 'sink.sock');
  const servers = [await listen(echoPath, echo), await listen(sinkPath, sink)];
  const ctrlPath = join(dir, 'ctrl.sock');
  const graph = [
    hostLink('echo', echoPath, join(dir, 'mesh-echo.sock')),
    hostLink('sink', sinkPath, join(dir, 'mesh-sink.sock')),
  ];
  const ctrl = await FakeCtrl.serving(ctrlPath, graph);
  const daemon = startDaemonProcess(ctrlPath);
  const socats = [
    startSocat(join(dir, 'socat-echo.sock'), echoPath),
    startSocat(join(dir, 'socat-sink.sock'), sinkPath),
  ];
  await eventually(
    () =>
      ['mesh-echo', 'mesh-sink', 'socat-echo', 'socat-sink'].every((n) => existsSync(join(dir, `${n}.sock`))),
    10_000,
    'relays',
  );

  const paths = {
    direct: { echo: echoPath, sink: sinkPath },
    'pv-xconnect': { echo: join(dir, 'mesh-echo.sock'), sink: join(dir, 'mesh-sink.sock') },
    socat: { echo: join(dir, 'socat-echo.sock'), sink: join(dir, 'socat-sink.sock') },
  };
  const rows: Record<string, unknown>[] = [];
  const results: Record<string, unknown> = {};
  for (const [name, path] of Object.entries(paths)) {
    const mibPerSecond = await throughput(path.sink);
    const latency = await pingPong(path.echo);
    const setups = await setupRate(path.echo, SETUPS);
    const row = {
      path: name,
      'MiB/s (64 KiB writes)': round(mibPerSecond),
      'p50 µs': round(percentile(latency, 50)),
      'p99 µs': round(percentile(latency, 99)),
      'connections/s': round(setups),
    };
    rows.push(row);
    results[name] = row;
  }
  const direct = results.direct as Record<string, number>;
  const mesh = results['pv-xconnect'] as Record<string, number>;
  const socat = results.socat as Record<string, number>;
  const ratios = {
    throughputVsSocat: round(
      (mesh['MiB/s (64 KiB writes)'] as number) / (socat['MiB/s (64 KiB writes)'] as number),
      2,
    ),
    throughputVsDirect: round(
      (mesh['MiB/s (64 KiB writes)'] as number) / (direct['MiB/s (64 KiB writes)'] as number),
      2,
    ),
    addedP50VsSocatAddedP50: round(
      ((mesh['p50 µs'] as number) - (direct['p50 µs'] as number)) /
        ((socat['p50 µs'] as number) - (direct['p50 µs'] as number)),
      2,
    ),
    setupRateVsSocat: round((mesh['connections/s'] as number) / (socat['connections/s'] as number), 2),
  };
  await stopProcess(daemon);
  for (const socat of socats) await stopProcess(socat);
  await ctrl.stop();

  const reconcile = await reconcileTimes(dir, echoPath);
  const rss = await memory(dir, echoPath);
  for (const server of servers) server.close();
  rmSync(dir, { recursive: true, force: true });

  console.log('relay paths (one run):');
  record('unix', { relay: results, ratios, reconcile, rss }, rows);
  console.log('ratios:', ratios);
  console.table(reconcile);
  console.log('daemon RSS:', rss);
}
