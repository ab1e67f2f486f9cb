// `npm run bench -- wayland`: headless weston reached directly, through the wayland mediator (the real pv-xconnect
// process), and, for scale, through the plain unix relay and socat (bytes only). Measures wl_display.sync round
// trips and the frame rate of an shm client that draws a new frame each time the compositor's frame callback fires.
// Then the instructions each relay executes per sync round trip, under callgrind (bench/instructions.ts).
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
  interleaved,
  nowMs,
  pairedExcess,
  percentile,
  record,
  round,
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
  whenExisting,
} from './instructions.js';

/** The role of the bench's links: sees every global. */
const ADMIN = 'compositor-admin';
const ROUND_TRIPS = 5000;
/** Round trips per turn, each turn after a few unmeasured ones. */
const BLOCK = 500;
const WARMUP_ROUND_TRIPS = 50;
const WAYLAND = 'pv-xconnect wayland';
const UNIX = 'pv-xconnect unix (bytes+fds, relayed by the addon)';
const SOCAT = 'socat (bytes only)';
const FRAME_SECONDS = 5;
const WIDTH = 256;
const HEIGHT = 256;
const STRIDE = WIDTH * 4;
const ARGB8888 = 0;

async function connect(path: string): Promise<RawWaylandClient> {
  return new RawWaylandClient(new FdSocket(await connectIn({ pid: 0, path })));
}

/** One path's round: the p50 and p99 of its BLOCK round trips, and its relay's CPU time over them. */
interface SyncRound {
  p50: number;
  p99: number;
  cpuMs: number;
}

/**
 * wl_display.sync → wl_callback.done, ROUND_TRIPS / BLOCK rounds of BLOCK round trips per path (each after a few
 * unmeasured ones), and the CPU time its relay (`relayCpuMs`: its CPU time so far, none for direct) spent on them. The paths take turns within each round, each round starting one path further on, so a change in the
 * machine's load (it is shared) weighs on all of them alike, while each block is a client doing round trips back
 * to back, as a real one does.
 */
async function syncRounds(
  paths: Record<string, string>,
  relayCpuMs: Record<string, () => number>,
): Promise<Map<string, SyncRound[]>> {
  const clients = new Map<string, RawWaylandClient>();
  for (const [name, path] of Object.entries(paths)) clients.set(name, await connect(path));
  const rounds = await interleaved(
    ROUND_TRIPS / BLOCK,
    Object.keys(paths).map((name) => ({ name })),
    async ({ name }): Promise<SyncRound> => {
      const client = clients.get(name) as RawWaylandClient;
      const relayCpu = relayCpuMs[name] ?? (() => Number.NaN);
      for (let i = 0; i < WARMUP_ROUND_TRIPS; i++) await client.roundtrip();
      const samples: number[] = [];
      const cpuBefore = relayCpu();
      for (let i = 0; i < BLOCK; i++) {
        const start = nowMs();
        await client.roundtrip();
        samples.push((nowMs() - start) * 1000);
        client.events.splice(0); // keep the event log short: waitFor scans it
      }
      const cpuMs = relayCpu() - cpuBefore;
      samples.sort((a, b) => a - b);
      return { p50: percentile(samples, 50), p99: percentile(samples, 99), cpuMs };
    },
  );
  for (const client of clients.values()) client.close();
  return rounds;
}

/** Round trips one client makes back to back on a fresh connection. */
async function syncsOn(path: string, count: number): Promise<void> {
  const client = await connect(path);
  for (let i = 0; i < count; i++) {
    await client.roundtrip();
    client.events.splice(0);
  }
  client.close();
}

/** Under callgrind everything runs ~50× slower: fewer round trips, after enough for the JIT to have settled. */
const COUNTED_ROUND_TRIPS = 2000;
const COUNTED_WARMUP = 1000;

/** The daemon (serving the link `name` at `path`) and socat, each started under callgrind. */
function relaysUnderCallgrind(
  dir: string,
  westonSocket: string,
): Record<string, (wrapper: string[]) => Promise<RelayUnderTest<string>>> {
  const daemonWith =
    (name: string, overrides: Record<string, string>) =>
    async (wrapper: string[]): Promise<RelayUnderTest<string>> => {
      const path = join(dir, `cg-${name}.sock`);
      const daemon = await daemonUnderCallgrind(
        wrapper,
        join(dir, `cg-${name}-ctrl.sock`),
        [hostLink(name, westonSocket, path, { role: ADMIN, ...overrides })],
        [path],
      );
      return { pids: [daemon.pid], endpoints: path, stop: daemon.stop };
    };
  return {
    [WAYLAND]: daemonWith('wayland', { type: 'wayland' }),
    [UNIX]: daemonWith('unix', {}),
    [SOCAT]: async (wrapper) => {
      const path = join(dir, 'cg-socat.sock');
      const socat = startSocat(path, westonSocket, wrapper);
      await whenExisting([path], 'socat');
      return { pids: [socat.pid as number], endpoints: path, stop: () => stopProcess(socat) };
    },
  };
}

function cpuUsPerRoundTrip(rounds: SyncRound[]): number {
  return round((rounds.reduce((sum, { cpuMs }) => sum + cpuMs, 0) * 1000) / (rounds.length * BLOCK));
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
    [WAYLAND]: join(dir, 'mesh-wayland.sock'),
    [UNIX]: join(dir, 'mesh-unix.sock'),
    [SOCAT]: join(dir, 'socat.sock'),
  };
  const graph = [
    hostLink('wayland', westonSocket, paths[WAYLAND] as string, {
      type: 'wayland',
      role: ADMIN,
    }),
    hostLink('unix', westonSocket, paths[UNIX] as string, { role: ADMIN }),
  ];
  const ctrlPath = join(dir, 'ctrl.sock');
  const ctrl = await FakeCtrl.serving(ctrlPath, graph);
  const daemon = startDaemonProcess(ctrlPath);
  const socat = startSocat(paths[SOCAT] as string, westonSocket);
  await eventually(() => Object.values(paths).every((path) => existsSync(path)), 10_000, 'relays');

  const rows: Record<string, unknown>[] = [];
  const results: Record<string, Record<string, string | number>> = {};
  let rounds = new Map<string, SyncRound[]>();
  let instructions: Record<string, InstructionCounts> = {};
  try {
    const daemonCpu = () => cpuMs(daemon.pid as number);
    rounds = await syncRounds(paths, {
      [WAYLAND]: daemonCpu,
      [UNIX]: daemonCpu,
      [SOCAT]: () => treeCpuMs(socat.pid as number),
    });
    for (const [name, path] of Object.entries(paths)) {
      const of = rounds.get(name) ?? [];
      const row: Record<string, string | number> = {
        'sync p50 µs': showSpread(spread(of.map((round) => round.p50))),
        'sync p99 µs': showSpread(spread(of.map((round) => round.p99))),
        // Over all rounds: one round's CPU time is a few clock ticks (10 ms each).
        'relay CPU µs per round trip': name === 'direct' ? '–' : cpuUsPerRoundTrip(of),
      };
      // The frame loop needs the shm pool's fd to arrive: socat drops it.
      if (name !== SOCAT) row['frames/s'] = round(await frameRate(path));
      rows.push({ path: name, ...row });
      results[name] = row;
    }
    await stopProcess(daemon);
    await stopProcess(socat);
    instructions = await instructionCounts(dir, relaysUnderCallgrind(dir, westonSocket), [
      {
        unit: 'per sync round trip',
        units: COUNTED_ROUND_TRIPS,
        run: (path) => syncsOn(path, COUNTED_ROUND_TRIPS),
        warmUp: (path) => syncsOn(path, COUNTED_WARMUP),
      },
    ]);
  } finally {
    await stopProcess(daemon);
    await stopProcess(socat);
    await stopProcess(weston);
    await ctrl.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const cpuRatio = (a: string, b: string) =>
    round(cpuUsPerRoundTrip(rounds.get(a) ?? []) / cpuUsPerRoundTrip(rounds.get(b) ?? []), 2);
  const added = (path: string) => pairedExcess(rounds, path, 'direct', (round) => round.p50);
  const comparison = {
    'added sync p50 µs': added(WAYLAND),
    // What the protocol handling costs on top of a relay without it.
    'added sync p50 µs over the unix relay': pairedExcess(rounds, WAYLAND, UNIX, (r) => r.p50),
    'added sync p50 µs, unix relay': added(UNIX),
    'added sync p50 µs, socat': added(SOCAT),
    'relay CPU per round trip vs socat': cpuRatio(WAYLAND, SOCAT),
    'unix relay CPU per round trip vs socat': cpuRatio(UNIX, SOCAT),
    'frame rate vs direct': round(
      Number(results[WAYLAND]?.['frames/s']) / Number(results.direct?.['frames/s']),
      3,
    ),
    targets: { 'added sync p50 µs': 50, 'frame rate vs direct': 0.95 },
  };
  record(
    'wayland',
    {
      roundTrips: ROUND_TRIPS,
      rounds: ROUND_TRIPS / BLOCK,
      method:
        'rounds of 500 round trips per path, the paths taking turns, each round starting one path further on; figures are median (min–max) over the rounds; added latencies paired per round',
      frameSeconds: FRAME_SECONDS,
      load: load(),
      results,
      comparison,
      instructions,
    },
    rows,
  );
  console.log(comparison);
  console.log('instructions:', instructions);
}
