// `npm run bench -- wayland`: headless weston reached directly, through the wayland mediator (the real pv-xconnect
// process), and, for scale, through the plain unix relay and socat (bytes only). Measures wl_display.sync round
// trips and the frame rate of an shm client that draws a new frame each time the compositor's frame callback fires.
import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { FdSocket } from '../native/fd-socket.js';
import { dupFd } from '../native/fds.js';
import { connectIn } from '../native/namespace.js';
import {
  wl_buffer,
  wl_callback,
  wl_compositor,
  wl_shm,
  wl_shm_pool,
  wl_surface,
} from '../protocols/wayland/generated/wayland.generated.js';
import {
  xdg_surface,
  xdg_toplevel,
  xdg_wm_base,
} from '../protocols/wayland/generated/xdg-shell.generated.js';
import { messageNamed } from '../protocols/wayland/wire.js';
import { startDaemonProcess, stopProcess } from '../testkit/daemon-process.js';
import { FakeCtrl } from '../testkit/fake-ctrl.js';
import { eventually } from '../testkit/mesh.js';
import { type Global, RawWaylandClient } from '../testkit/wayland-client.js';
import {
  cpuMs,
  hostLink,
  nowMs,
  percentile,
  record,
  round,
  startSocat,
  treeCpuMs,
  watchLoad,
} from './harness.js';

/** The role of the bench's links: sees every global. */
const ADMIN = 'compositor-admin';
const ROUND_TRIPS = 5000;
/** Round trips per turn, each turn after a few unmeasured ones. */
const BLOCK = 500;
const WARMUP_ROUND_TRIPS = 50;
const FRAME_SECONDS = 5;
const WIDTH = 256;
const HEIGHT = 256;
const STRIDE = WIDTH * 4;
const ARGB8888 = 0;

async function connect(path: string): Promise<RawWaylandClient> {
  return new RawWaylandClient(new FdSocket(await connectIn({ pid: 0, path })));
}

/**
 * µs per wl_display.sync → wl_callback.done for each path, sorted, and the CPU µs its relay (`relayCpuMs`: its CPU
 * time so far, none for direct) spent per round trip. The paths take turns in blocks of round trips, so a change in
 * the machine's load (it is shared) weighs on all of them alike, while each block is a client doing round trips
 * back to back, as a real one does.
 */
async function syncLatencies(
  paths: Record<string, string>,
  relayCpuMs: Record<string, () => number>,
): Promise<Record<string, { samples: number[]; cpuUsPerRoundTrip: number }>> {
  const names = Object.keys(paths);
  const clients = await Promise.all(Object.values(paths).map(connect));
  const samples = clients.map((): number[] => []);
  const cpu = clients.map(() => 0);
  for (let block = 0; block < ROUND_TRIPS / BLOCK; block++) {
    for (const [index, client] of clients.entries()) {
      const relayCpu = relayCpuMs[names[index] as string] ?? (() => Number.NaN);
      const cpuBefore = relayCpu();
      for (let i = 0; i < WARMUP_ROUND_TRIPS + BLOCK; i++) {
        const start = nowMs();
        await client.roundtrip();
        if (i >= WARMUP_ROUND_TRIPS) samples[index]?.push((nowMs() - start) * 1000);
        client.events.splice(0); // keep the event log short: waitFor scans it
      }
      cpu[index] = (cpu[index] as number) + relayCpu() - cpuBefore;
    }
  }
  for (const client of clients) client.close();
  const roundTrips = (ROUND_TRIPS / BLOCK) * (WARMUP_ROUND_TRIPS + BLOCK);
  return Object.fromEntries(
    names.map((name, index) => [
      name,
      {
        samples: (samples[index] ?? []).sort((a, b) => a - b),
        cpuUsPerRoundTrip: ((cpu[index] as number) * 1000) / roundTrips,
      },
    ]),
  );
}

function find(globals: Global[], name: string): Global {
  const found = globals.find((global) => global.interface === name);
  if (!found) throw new Error(`the compositor has no ${name}`);
  return found;
}

/** Frames per second of a toplevel that commits a freshly drawn shm buffer on every frame callback. */
async function frameRate(path: string): Promise<number> {
  const client = await connect(path);
  const { registry, globals } = await client.globals();
  const compositor = client.bind(registry, find(globals, 'wl_compositor'), 4);
  const shm = client.bind(registry, find(globals, 'wl_shm'));
  const wmBase = client.bind(registry, find(globals, 'xdg_wm_base'));

  const file = join('/dev/shm', `pvx-bench-wayland-${process.pid}`);
  const fd = openSync(file, 'w+');
  unlinkSync(file);
  ftruncateSync(fd, STRIDE * HEIGHT);
  const pool = client.allocate(wl_shm_pool);
  // The socket closes the fds it sends: it gets its own duplicate, we keep drawing through ours.
  client.request(shm, messageNamed(wl_shm.requests, 'create_pool'), {
    id: pool,
    fd: dupFd(fd),
    size: STRIDE * HEIGHT,
  });
  const buffer = client.allocate(wl_buffer);
  client.request(pool, messageNamed(wl_shm_pool.requests, 'create_buffer'), {
    id: buffer,
    offset: 0,
    width: WIDTH,
    height: HEIGHT,
    stride: STRIDE,
    format: ARGB8888,
  });
  const surface = client.allocate(wl_surface);
  client.request(compositor, messageNamed(wl_compositor.requests, 'create_surface'), { id: surface });
  const xdgSurface = client.allocate(xdg_surface);
  client.request(wmBase, messageNamed(xdg_wm_base.requests, 'get_xdg_surface'), { id: xdgSurface, surface });
  const toplevel = client.allocate(xdg_toplevel);
  client.request(xdgSurface, messageNamed(xdg_surface.requests, 'get_toplevel'), { id: toplevel });
  client.request(surface, messageNamed(wl_surface.requests, 'commit'), {});
  const configure = await client.waitFor(
    (event) => event.objectId === xdgSurface && event.name === 'configure',
  );
  client.request(xdgSurface, messageNamed(xdg_surface.requests, 'ack_configure'), {
    serial: configure.args[0] as number,
  });

  const row = Buffer.alloc(STRIDE);
  let frames = 0;
  const drawAndCommit = () => {
    row.fill(frames & 0xff);
    writeSync(fd, row, 0, STRIDE, (frames % HEIGHT) * STRIDE);
    const callback = client.allocate(wl_callback);
    client.request(surface, messageNamed(wl_surface.requests, 'frame'), { callback });
    client.request(surface, messageNamed(wl_surface.requests, 'attach'), { buffer, x: 0, y: 0 });
    client.request(surface, messageNamed(wl_surface.requests, 'damage_buffer'), {
      x: 0,
      y: 0,
      width: WIDTH,
      height: HEIGHT,
    });
    client.request(surface, messageNamed(wl_surface.requests, 'commit'), {});
    return callback;
  };
  const start = nowMs();
  while (nowMs() - start < FRAME_SECONDS * 1000) {
    const callback = drawAndCommit();
    await client.waitFor((event) => event.objectId === callback && event.name === 'done');
    const ping = client.events.find((event) => event.name === 'ping');
    if (ping)
      client.request(wmBase, messageNamed(xdg_wm_base.requests, 'pong'), { serial: ping.args[0] as number });
    client.events.splice(0);
    frames++;
  }
  const seconds = (nowMs() - start) / 1000;
  if (client.displayError()) throw new Error(`protocol error: ${JSON.stringify(client.displayError())}`);
  client.close();
  closeSync(fd);
  return frames / seconds;
}

function startWeston(runtimeDir: string): ChildProcess {
  return spawn(
    'weston',
    ['--backend=headless-backend.so', '--socket=wayland-bench', '--idle-time=0', '--no-config'],
    { env: { ...process.env, XDG_RUNTIME_DIR: runtimeDir }, stdio: 'ignore' },
  );
}

export async function run(): Promise<void> {
  const load = watchLoad();
  const dir = mkdtempSync('/dev/shm/pvx-bench-wayland-');
  const westonSocket = join(dir, 'wayland-bench');
  const weston = startWeston(dir);
  await eventually(() => existsSync(westonSocket), 10_000, 'weston');
  const paths: Record<string, string> = {
    direct: westonSocket,
    'pv-xconnect wayland': join(dir, 'mesh-wayland.sock'),
    'pv-xconnect unix (bytes+fds)': join(dir, 'mesh-unix.sock'),
    'socat (bytes only)': join(dir, 'socat.sock'),
  };
  const graph = [
    hostLink('wayland', westonSocket, paths['pv-xconnect wayland'] as string, {
      type: 'wayland',
      role: ADMIN,
    }),
    hostLink('unix', westonSocket, paths['pv-xconnect unix (bytes+fds)'] as string, { role: ADMIN }),
  ];
  const ctrlPath = join(dir, 'ctrl.sock');
  const ctrl = await FakeCtrl.serving(ctrlPath, graph);
  const daemon = startDaemonProcess(ctrlPath);
  const socat = startSocat(paths['socat (bytes only)'] as string, westonSocket);
  await eventually(() => Object.values(paths).every((path) => existsSync(path)), 10_000, 'relays');

  const rows: Record<string, unknown>[] = [];
  const results: Record<string, Record<string, number>> = {};
  try {
    const daemonCpu = () => cpuMs(daemon.pid as number);
    const latencies = await syncLatencies(paths, {
      'pv-xconnect wayland': daemonCpu,
      'pv-xconnect unix (bytes+fds)': daemonCpu,
      'socat (bytes only)': () => treeCpuMs(socat.pid as number),
    });
    for (const [name, path] of Object.entries(paths)) {
      const { samples: latency = [], cpuUsPerRoundTrip = Number.NaN } = latencies[name] ?? {};
      const row: Record<string, number> = {
        'sync p50 µs': round(percentile(latency, 50)),
        'sync p99 µs': round(percentile(latency, 99)),
        'relay CPU µs per round trip': round(cpuUsPerRoundTrip),
      };
      // The frame loop needs the shm pool's fd to arrive: socat drops it.
      if (!name.startsWith('socat')) row['frames/s'] = round(await frameRate(path));
      rows.push({ path: name, ...row });
      results[name] = row;
    }
  } finally {
    await stopProcess(daemon);
    await stopProcess(socat);
    await stopProcess(weston);
    await ctrl.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const direct = results.direct as Record<string, number>;
  const mediated = results['pv-xconnect wayland'] as Record<string, number>;
  const plainRelay = results['pv-xconnect unix (bytes+fds)'] as Record<string, number>;
  const comparison = {
    addedSyncP50Us: round((mediated['sync p50 µs'] as number) - (direct['sync p50 µs'] as number)),
    // What the protocol handling costs on top of the same relay without it.
    addedOverUnixRelaySyncP50Us: round(
      (mediated['sync p50 µs'] as number) - (plainRelay['sync p50 µs'] as number),
    ),
    frameRateVsDirect: round((mediated['frames/s'] as number) / (direct['frames/s'] as number), 3),
    targets: { addedSyncP50Us: 50, frameRateVsDirect: 0.95 },
  };
  record(
    'wayland',
    { roundTrips: ROUND_TRIPS, frameSeconds: FRAME_SECONDS, load: load(), results, comparison },
    rows,
  );
  console.log(comparison);
}
