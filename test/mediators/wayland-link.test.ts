// The wayland mediator end to end: pv-xconnect in-process, weston in a provider container (headless, and on Xvfb
// for a real keyboard), clients in two consumer containers, and a stub compositor (testkit/wayland-stub.ts)
// only for what weston cannot do: 100 keymaps in one write, a wlroots-only global.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Daemon } from '../../daemon/daemon.js';
import { statIn } from '../../native/namespace.js';
import {
  wl_data_device_manager,
  wl_data_source,
  wl_display,
  wl_keyboard,
  wl_seat,
  wl_shm,
  wl_shm_pool,
} from '../../protocols/wayland/generated/wayland.generated.js';
import { encodeMessage, messageNamed } from '../../protocols/wayland/wire.js';
import { type Container, startContainer } from '../../testkit/container.js';
import { FakeCtrl } from '../../testkit/fake-ctrl.js';
import {
  closeAll,
  connectFrom,
  contentOf,
  eventually,
  fileWithContent,
  type GraphEntry,
  openFdCount,
  PATIENCE_MS,
  recordingLogger,
} from '../../testkit/mesh.js';
import { type Global, RawWaylandClient } from '../../testkit/wayland-client.js';
import { StubCompositor } from '../../testkit/wayland-stub.js';
import {
  clientCommand,
  parseWaylandInfo,
  startWeston,
  WESTON_SOCKET,
  WESTON_X11_SOCKET,
  type Weston,
} from '../../testkit/wayland-weston.js';

const ADMIN_TARGET = '/run/pv/services/wayland-admin.sock';
const ANY_TARGET = '/run/pv/services/wayland.sock';
const STUB_TARGET = '/run/pv/services/wayland-stub.sock';
const X11_TARGET = '/run/pv/services/wayland-x11.sock';
const STUB_SOCKET = '/run/stub.sock';
const VIEWER_TARGET = '/run/pv/services/wayland-viewer.sock';
const KIOSK_TARGET = '/run/pv/services/wayland-kiosk.sock';
/** The compositor's allow list: two roles, each seeing exactly its `globals` (a privileged one included). */
const GLOBALS_ALLOW = [
  { role: 'viewer', globals: ['wl_compositor', 'wl_shm'] },
  { role: 'kiosk', globals: ['wl_*'] },
  { role: 'kiosk', globals: ['weston_screenshooter'] },
];
/** Weston 10's globals that the default policy keeps from role `any`. */
const WESTON_PRIVILEGED = ['weston_desktop_shell', 'weston_screenshooter', 'zwp_input_panel_v1'];
/**
 * A shell function for client commands: `waitfor FILE PATTERN COUNT` waits until FILE has COUNT lines matching
 * PATTERN, or fails after the tests' patience. Clients are watched through their WAYLAND_DEBUG
 * trace, so a test waits for what a client did, never for a fixed time.
 */
const WAITFOR =
  'waitfor() { i=0; ' +
  'while [ "$(cat "$1" 2>/dev/null | grep -c -- "$2")" -lt "$3" ]; do ' +
  `i=$((i+1)); [ $i -gt ${PATIENCE_MS / 50} ] && return 1; sleep 0.05; done; }; `;

let work: string;
let ctrl: FakeCtrl;
let P: Container;
let C1: Container;
let C2: Container;
let weston: Weston;
let stub: StubCompositor;
let daemon: Daemon;
const logLines: Record<string, unknown>[] = [];
const clients: RawWaylandClient[] = [];

function link(
  consumer: string,
  pid: number,
  name: string,
  role: string,
  target: string,
  socket = WESTON_SOCKET,
) {
  return {
    consumer,
    consumer_pid: pid,
    provider: 'compositor',
    provider_pid: P.pid,
    name,
    type: 'wayland',
    role,
    target,
    socket,
  } satisfies GraphEntry;
}

async function rawClient(container: Container, target = ANY_TARGET): Promise<RawWaylandClient> {
  const client = new RawWaylandClient(await connectFrom(container.pid, target));
  clients.push(client);
  return client;
}

/** The reasons the relay logged for rejected connections, newest last. */
function rejections(): string[] {
  return logLines.filter((line) => line.event === 'connection rejected').map((line) => String(line.reason));
}

function linkCounters(name: string, consumer = 'app1') {
  const found = daemon.reconciler
    .list()
    .find((entry) => entry.spec.name === name && entry.spec.consumer === consumer);
  if (!found) throw new Error(`no link ${name}`);
  return found.counters;
}

/** Weston still serves: a fresh client completes a round trip. */
async function westonServes(): Promise<void> {
  const client = await rawClient(C2);
  await client.roundtrip();
  client.close();
  expect(weston.process.exitCode).toBeNull();
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-wayland-'));
  ctrl = new FakeCtrl(join(work, 'pv-ctrl'));
  await ctrl.start();
  [P, C1, C2] = await Promise.all([
    startContainer({ privateTmp: true }),
    startContainer({ privateTmp: true }),
    startContainer({ privateTmp: true }),
  ]);
  [weston] = await Promise.all([startWeston(P), startWeston(P, 'x11')]);
  stub = await StubCompositor.start(P.pid, STUB_SOCKET, [
    { interface: 'wl_seat', version: 7 },
    { interface: 'zwlr_screencopy_manager_v1', version: 3 },
  ]);
  ctrl.setGraph([
    link('app1', C1.pid, 'wayland-admin', 'compositor-admin', ADMIN_TARGET),
    link('app1', C1.pid, 'wayland', 'any', ANY_TARGET),
    link('app1', C1.pid, 'wayland-stub', 'any', STUB_TARGET, STUB_SOCKET),
    link('app1', C1.pid, 'wayland-x11', 'any', X11_TARGET, WESTON_X11_SOCKET),
    link('app2', C2.pid, 'wayland', 'any', ANY_TARGET),
    { ...link('app1', C1.pid, 'wayland-viewer', 'viewer', VIEWER_TARGET), allow: GLOBALS_ALLOW },
    { ...link('app1', C1.pid, 'wayland-kiosk', 'kiosk', KIOSK_TARGET), allow: GLOBALS_ALLOW },
  ]);
  daemon = new Daemon({
    ctrlSocket: ctrl.socketPath,
    intervalMs: 500,
    statusSocket: null,
    log: recordingLogger(logLines),
  });
  await daemon.start();
  for (const [container, target] of [
    [C1, ADMIN_TARGET],
    [C1, ANY_TARGET],
    [C1, STUB_TARGET],
    [C1, X11_TARGET],
    [C2, ANY_TARGET],
    [C1, VIEWER_TARGET],
    [C1, KIOSK_TARGET],
  ] as const) {
    await eventually(
      () => statIn({ pid: container.pid, path: target }).then((stat) => stat.type === 'socket'),
      PATIENCE_MS,
      `${target} planted`,
    );
  }
});

afterAll(async () => {
  for (const client of clients) client.close();
  await daemon?.stop();
  stub?.close();
  await Promise.all([P?.stop(), C1?.stop(), C2?.stop(), ctrl?.stop()]);
  rmSync(work, { recursive: true, force: true });
});

/** wayland-info straight to weston in P, and through two targets from C1, all at once; each must succeed. */
async function waylandInfo(first: string, second: string) {
  const runs = await Promise.all([
    P.exec(clientCommand(WESTON_SOCKET, 'wayland-info')),
    C1.exec(clientCommand(first, 'wayland-info')),
    C1.exec(clientCommand(second, 'wayland-info')),
  ]);
  for (const run of runs) expect(run.code, run.stderr).toBe(0);
  return runs;
}

/**
 * A raw client at `target` binds weston's global of interface `iface` by its real name, which the link hides: it gets
 * what libwayland gives for an unknown name and is disconnected.
 */
async function bindIsRefused(target: string, iface: string): Promise<void> {
  const direct = parseWaylandInfo((await P.exec(clientCommand(WESTON_SOCKET, 'wayland-info'))).stdout);
  const hidden = direct.find((global) => global.interface === iface) as Global;
  const client = await rawClient(C1, target);
  const { registry } = await client.globals();
  client.bind(registry, hidden);
  await client.closed;
  expect(client.displayError()).toEqual({
    objectId: registry,
    code: 0,
    message: `invalid global ${iface} (${hidden.name})`,
  });
}

describe('real clients through the mediator to headless weston', () => {
  it('wayland-info lists every global for compositor-admin and all but the privileged ones for any', async () => {
    const [direct, admin, any] = await waylandInfo(ADMIN_TARGET, ANY_TARGET);
    const directGlobals = parseWaylandInfo(direct.stdout);
    expect(directGlobals.map((global) => global.interface)).toEqual(
      expect.arrayContaining(WESTON_PRIVILEGED),
    );
    expect(parseWaylandInfo(admin.stdout)).toEqual(directGlobals);
    expect(parseWaylandInfo(any.stdout)).toEqual(
      directGlobals.filter((global) => !WESTON_PRIVILEGED.includes(global.interface)),
    );
    // The rest of the output (outputs, shm formats, ...) needed binds and events: identical too.
    const body = (output: string) =>
      output.replace(
        /^interface: '(weston_desktop_shell|weston_screenshooter|zwp_input_panel_v1)'.*\n/gm,
        '',
      );
    expect(body(any.stdout)).toBe(body(direct.stdout));
  });

  it('weston-simple-shm draws 20 frames in each of two consumer containers at once; neither sees the other', async () => {
    // Its own messages (not the trace) go back to stderr, where an error would show.
    const shmRun =
      `${WAITFOR}WAYLAND_DEBUG=1 weston-simple-shm 2>/tmp/shm-trace & pid=$!; ` +
      "waitfor /tmp/shm-trace 'wl_surface@[0-9]*[.]commit(' 20 && echo drew; " +
      'kill -INT $pid; wait $pid; echo "exit=$?"; grep -v "^\\[" /tmp/shm-trace >&2';
    const before = linkCounters('wayland').fds.toProvider;
    const runs = Promise.all([
      C1.exec(clientCommand(ANY_TARGET, shmRun)),
      C2.exec(clientCommand(ANY_TARGET, shmRun)),
    ]);

    // Meanwhile: a raw client in each container. The first one's wl_shm does not exist on the second connection.
    const first = await rawClient(C1);
    const second = await rawClient(C2);
    const { registry, globals } = await first.globals();
    const shm = first.bind(registry, globals.find((global) => global.interface === 'wl_shm') as Global);
    await first.roundtrip();
    await second.globals(); // allocates ids 2 and 3 only
    expect(shm).toBeGreaterThan(3);
    second.request(shm, messageNamed(wl_shm.requests, 'create_pool'), {
      id: 10,
      fd: fileWithContent('x'),
      size: 1,
    });
    await second.closed;
    expect(rejections().at(-1)).toMatch(new RegExp(`client sent opcode 0 to unknown object ${shm} `));
    await first.roundtrip();

    for (const run of await runs) {
      expect(run.stdout).toContain('drew');
      expect(run.stdout).toContain('exit=0');
      expect(run.stderr).not.toMatch(/error/i);
    }
    // Each simple-shm passed its shm pool fd (1 fd per pool) through the mediator.
    expect(linkCounters('wayland').fds.toProvider - before).toBeGreaterThanOrEqual(1);
    expect(linkCounters('wayland', 'app2').fds.toProvider).toBeGreaterThanOrEqual(1);
  });

  it('weston-terminal draws its window and is still running afterwards', async () => {
    const run = await C1.exec(
      clientCommand(
        ANY_TARGET,
        `${WAITFOR}WAYLAND_DEBUG=1 weston-terminal 2>/tmp/terminal-trace & pid=$!; ` +
          "waitfor /tmp/terminal-trace 'wl_surface@[0-9]*[.]commit(' 1 && kill -0 $pid && echo alive; " +
          'kill $pid; grep -v "^\\[" /tmp/terminal-trace >&2',
      ),
    );
    expect(run.stdout).toContain('alive');
    expect(run.stderr).not.toMatch(/wl_display|protocol error|failed/i);
  });

  it('weston-terminal gets and compiles the xkb keymap of a weston with a keyboard (X11 backend on Xvfb)', async () => {
    // WAYLAND_DEBUG makes libwayland print each event with the fd it received for it, just before its handler
    // runs: once the event after the keymap (repeat_info) is printed, the keymap has been mapped and compiled.
    const run = await C1.exec(
      clientCommand(
        X11_TARGET,
        `${WAITFOR}WAYLAND_DEBUG=1 weston-terminal 2>/tmp/debug & pid=$!; ` +
          "waitfor /tmp/debug 'keymap(' 1 && waitfor /tmp/debug 'repeat_info(' 1; " +
          'kill -0 $pid && echo alive; kill $pid; grep -E "keymap|error" /tmp/debug',
      ),
    );
    expect(run.stdout).toContain('alive');
    // A real keymap (tens of KiB) arrived with its fd; a missing fd is a fatal libwayland error instead.
    const keymap = /wl_keyboard@\d+\.keymap\(1, fd \d+, (\d+)\)/.exec(run.stdout);
    expect(Number(keymap?.[1])).toBeGreaterThan(10_000);
    // weston-terminal reports a keymap it cannot map or compile ('failed to ... keymap') on the same stream.
    expect(run.stdout).not.toMatch(/error|failed/);
  });

  it('wayland-info gets the keymap fd and keyboard of a weston with a real keyboard (X11 backend on Xvfb)', async () => {
    const before = linkCounters('wayland-x11').fds.toConsumer;
    const info = 'WAYLAND_DEBUG=1 wayland-info';
    const [direct, mediated] = await Promise.all([
      P.exec(clientCommand(WESTON_X11_SOCKET, info)),
      C1.exec(clientCommand(X11_TARGET, info)),
    ]);
    for (const run of [direct, mediated]) expect(run.code, run.stderr).toBe(0);
    // The seat as weston describes it: through the mediator exactly as directly.
    const seat = (output: string) =>
      output.split(/^(?=interface: )/m).find((section) => section.startsWith("interface: 'wl_seat'"));
    expect(seat(mediated.stdout)).toMatch(/keyboard repeat rate: \d+/);
    expect(seat(mediated.stdout)).toBe(seat(direct.stdout));
    // A real xkb keymap (tens of KiB) came with its fd, counted by the link.
    const keymap = /wl_keyboard@\d+\.keymap\(1, fd \d+, (\d+)\)/.exec(mediated.stderr);
    expect(Number(keymap?.[1])).toBeGreaterThan(10_000);
    expect(linkCounters('wayland-x11').fds.toConsumer - before).toBeGreaterThanOrEqual(1);
  });

  it('a wlroots-only global is hidden from role any (a stub compositor: weston has none)', async () => {
    const [direct, mediated] = await Promise.all([
      P.exec(clientCommand(STUB_SOCKET, 'wayland-info')),
      C1.exec(clientCommand(STUB_TARGET, 'wayland-info')),
    ]);
    for (const run of [direct, mediated]) expect(run.code, run.stderr).toBe(0);
    expect(direct.stdout).toContain("'zwlr_screencopy_manager_v1'");
    expect(mediated.stdout).toContain("'wl_seat'");
    expect(mediated.stdout).not.toContain('zwlr_screencopy_manager_v1');
  });
});

describe('raw client cases', () => {
  let fdsBefore = 0;
  let casesFrom = 0;
  beforeAll(() => {
    fdsBefore = openFdCount();
    casesFrom = clients.length;
  });
  it('a message of the maximum size (4096 bytes) passes', async () => {
    const client = await rawClient(C1);
    const { registry, globals } = await client.globals();
    const manager = client.bind(
      registry,
      globals.find((g) => g.interface === 'wl_data_device_manager') as Global,
      3,
    );
    const source = client.allocate(wl_data_source);
    client.request(manager, messageNamed(wl_data_device_manager.requests, 'create_data_source'), {
      id: source,
    });
    const offer = encodeMessage(source, messageNamed(wl_data_source.requests, 'offer'), {
      mime_type: 'x'.repeat(4083),
    });
    expect(offer.data.length).toBe(4096);
    client.sendRaw(offer.data);
    await client.roundtrip();
    expect(client.displayError()).toBeUndefined();
  });

  it('100 fds in one write reach weston in writes of at most 28, each with its create_pool', async () => {
    const client = await rawClient(C1);
    const { registry, globals } = await client.globals();
    const shm = client.bind(registry, globals.find((g) => g.interface === 'wl_shm') as Global);
    await client.roundtrip();
    const before = linkCounters('wayland').fds.toProvider;
    const parts: Buffer[] = [];
    const fds: number[] = [];
    for (let index = 0; index < 100; index++) {
      const pool = encodeMessage(shm, messageNamed(wl_shm.requests, 'create_pool'), {
        id: client.allocate(wl_shm_pool),
        fd: fileWithContent('p'.repeat(4096)),
        size: 4096,
      });
      parts.push(pool.data);
      fds.push(...pool.fds);
    }
    client.sendRaw(Buffer.concat(parts), fds);
    await client.roundtrip();
    expect(client.displayError()).toBeUndefined();
    expect(linkCounters('wayland').fds.toProvider - before).toBe(100);
  });

  it('100 keymap fds in one burst from the compositor arrive at most 28 per read, each with its keymap event', async () => {
    const client = await rawClient(C1, STUB_TARGET);
    const { registry, globals } = await client.globals();
    const seat = client.bind(registry, globals.find((g) => g.interface === 'wl_seat') as Global, 7);
    await client.roundtrip();
    const requests = Array.from(
      { length: 100 },
      () =>
        encodeMessage(seat, messageNamed(wl_seat.requests, 'get_keyboard'), {
          id: client.allocate(wl_keyboard),
        }).data,
    );
    const firstKeyboard = stub.requests.filter((request) => request === 'wl_seat.get_keyboard').length;
    client.sendRaw(Buffer.concat(requests));
    await client.roundtrip();
    const keymaps = client.events.filter((event) => event.name === 'keymap');
    expect(keymaps).toHaveLength(100);
    keymaps.forEach((event, index) => {
      expect(event.fds).toHaveLength(1);
      expect(contentOf(event.fds[0] as number)).toBe(`xkb_keymap { keyboard ${firstKeyboard + index} };`);
    });
    expect(Math.max(...client.chunks.map((chunk) => chunk.fds))).toBeLessThanOrEqual(28);
    closeAll(keymaps.flatMap((event) => event.fds.splice(0)));
  });

  const closedWith = async (client: RawWaylandClient, reason: RegExp) => {
    await client.closed;
    expect(rejections().at(-1)).toMatch(reason);
    await westonServes();
  };

  it('a duplicated new_id closes that client with a log line', async () => {
    const client = await rawClient(C1);
    const { registry, globals } = await client.globals();
    const manager = client.bind(
      registry,
      globals.find((g) => g.interface === 'wl_data_device_manager') as Global,
      3,
    );
    const create = messageNamed(wl_data_device_manager.requests, 'create_data_source');
    const source = client.allocate(wl_data_source);
    client.request(manager, create, { id: source });
    client.request(manager, create, { id: source });
    await closedWith(
      client,
      new RegExp(`client reused new_id ${source} while wl_data_source@${source} is still alive`),
    );
  });

  it('a message claiming more fds than were sent closes that client', async () => {
    const client = await rawClient(C1);
    const { registry, globals } = await client.globals();
    const shm = client.bind(registry, globals.find((g) => g.interface === 'wl_shm') as Global);
    const pool = encodeMessage(shm, messageNamed(wl_shm.requests, 'create_pool'), {
      id: 9,
      fd: 0,
      size: 4096,
    });
    client.sendRaw(pool.data); // its fd is not sent
    await closedWith(client, /carries 1 fds but only 0 were received/);
  });

  it('a truncated message closes that client', async () => {
    const client = await rawClient(C1);
    await client.roundtrip();
    const sync = encodeMessage(1, messageNamed(wl_display.requests, 'sync'), { callback: 7 }).data;
    client.sendRaw(sync.subarray(0, 10));
    client.socket.end();
    await closedWith(client, /truncated message: the stream ended after 10 bytes of a 12-byte message/);
  });

  it('an unknown opcode closes that client', async () => {
    const client = await rawClient(C1);
    const bogus = encodeMessage(1, messageNamed(wl_display.requests, 'sync'), { callback: 7 }).data;
    bogus.writeUInt16LE(7, 4);
    // With two fds no message uses: the mediator holds them when it rejects, and must close them (checked below).
    client.sendRaw(bogus, [fileWithContent('unused'), fileWithContent('unused')]);
    await closedWith(client, /unknown request opcode 7 to wl_display@1/);
  });

  it('a bind to a hidden global gets the protocol error libwayland gives and never reaches weston', async () => {
    await bindIsRefused(ANY_TARGET, 'weston_screenshooter');
    expect(rejections().at(-1)).toMatch(/refused: hidden from this role/);
    await westonServes();
  });

  it("wayland-info through two roles sees exactly each role's globals from the allow list", async () => {
    const [direct, viewer, kiosk] = await waylandInfo(VIEWER_TARGET, KIOSK_TARGET);
    const directGlobals = parseWaylandInfo(direct.stdout);
    const only = (keep: (iface: string) => boolean) =>
      directGlobals.filter((global) => keep(global.interface));
    expect(
      parseWaylandInfo(viewer.stdout)
        .map((global) => global.interface)
        .sort(),
    ).toEqual(['wl_compositor', 'wl_shm']);
    expect(parseWaylandInfo(viewer.stdout)).toEqual(
      only((iface) => ['wl_compositor', 'wl_shm'].includes(iface)),
    );
    // The list replaces the role filter: a privileged global it names is shown.
    expect(parseWaylandInfo(kiosk.stdout)).toEqual(
      only((iface) => iface.startsWith('wl_') || iface === 'weston_screenshooter'),
    );
    expect(parseWaylandInfo(kiosk.stdout).map((global) => global.interface)).toContain(
      'weston_screenshooter',
    );
  });

  it('a bind to a global the allow list hides is refused and counted as denied', async () => {
    const denied = linkCounters('wayland-viewer').denied;
    // wl_subcompositor: a core global every weston offers, not in the viewer's list.
    await bindIsRefused(VIEWER_TARGET, 'wl_subcompositor');
    expect(linkCounters('wayland-viewer').denied).toBe(denied + 1);
    expect(
      logLines.some(
        (line) =>
          line.event === 'access denied' &&
          line.rule === 'viewer: globals' &&
          line.what === 'bind wl_subcompositor',
      ),
    ).toBe(true);
    await westonServes();
  });

  it('leaves no fd behind in the daemon once these clients are gone', async () => {
    for (const client of clients.slice(casesFrom)) client.close();
    await eventually(() => openFdCount() <= fdsBefore, PATIENCE_MS, `fd count back to ${fdsBefore}`);
  });
});
