// Connections that stop in the middle of a message, through the daemon with a short stall limit, against real
// peers: headless weston, a dbus-daemon with its test service, a Node HTTP server. Each stalled connection is closed
// once the limit has passed, with the reason logged; the peer behind it and the connections that are merely idle
// between messages carry on.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../daemon/daemon.js';
import type { Fields } from '../../log/logger.js';
import type { FdSocket } from '../../native/fd-socket.js';
import { MessageType, marshal, uidToHex } from '../../protocols/dbus/index.js';
import { HEADER_SIZE, MAX_MESSAGE_SIZE } from '../../protocols/wayland/wire.js';
import { type Container, startContainer } from '../../testkit/container.js';
import {
  BUS_SOCKET,
  type ProviderBus,
  SERVICE,
  SERVICE_PATH,
  startProviderBus,
  startTestService,
} from '../../testkit/dbus-bus.js';
import { DBusPeer } from '../../testkit/dbus-peer.js';
import { FakeCtrl } from '../../testkit/fake-ctrl.js';
import {
  allLinksActive,
  connectFrom,
  eventually,
  graphEntry,
  PATIENCE_MS,
  readToEnd,
  recordingLogger,
  startTestDaemon,
} from '../../testkit/mesh.js';
import { RawWaylandClient } from '../../testkit/wayland-client.js';
import { startWeston, WESTON_SOCKET, type Weston } from '../../testkit/wayland-weston.js';

const STALL_MS = 500;
const WAYLAND_TARGET = '/run/pv/services/wayland.sock';
const BUS_TARGET = '/run/pv/services/bus.sock';
const WEB_TARGET = '/run/pv/services/web.sock';

let work: string;
let ctrl: FakeCtrl;
let W: Container;
let C: Container;
let weston: Weston;
let bus: ProviderBus;
let service: DBusPeer;
let web: Server;
let daemon: Daemon;
const logs: Fields[] = [];
const opened: { close(): void }[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-stall-'));
  ctrl = new FakeCtrl(join(work, 'pv-ctrl'));
  await ctrl.start();
  [W, C, bus] = await Promise.all([
    startContainer({ privateTmp: true }),
    startContainer({ privateTmp: true }),
    startProviderBus(),
  ]);
  weston = await startWeston(W);
  service = await startTestService(bus);
  web = createServer((_req, res) => res.end('ok'));
  const webSocket = join(work, 'web.sock');
  await new Promise<void>((resolve) => web.listen(webSocket, resolve));
  ctrl.setGraph([
    graphEntry('wayland', C, W, { name: 'wayland', socket: WESTON_SOCKET, target: WAYLAND_TARGET }),
    // Narrowed, so that the mediator frames its messages: the addon relays a role the policy does not narrow after
    // BEGIN, as bytes, and a message stalled there is the bus's to judge.
    graphEntry('dbus', C, bus.container, {
      name: 'bus',
      role: 'operator',
      socket: BUS_SOCKET,
      target: BUS_TARGET,
      allow: [{ role: 'operator', interfaces: [SERVICE] }],
    }),
    graphEntry('rest', C, null, { name: 'web', socket: webSocket, target: WEB_TARGET }),
  ]);
  daemon = await startTestDaemon(ctrl, {
    limits: { messageStallMs: STALL_MS },
    log: recordingLogger(logs),
  });
  await allLinksActive(daemon);
});

afterAll(async () => {
  for (const peer of opened) peer.close();
  await daemon?.stop();
  service?.close();
  web?.close();
  await Promise.all([W?.stop(), C?.stop(), bus?.stop(), ctrl?.stop()]);
  rmSync(work, { recursive: true, force: true });
});

/** How many stalls the relay has logged in `direction`. */
function stalls(direction = 'toProvider'): number {
  return logs.filter(
    (line) => line.event === 'connection stalled mid-message' && line.direction === direction,
  ).length;
}

/** Sends `data` on `socket` and waits until the daemon closed the connection; returns how long that took. */
async function stallWith(socket: FdSocket, data: Buffer | (() => Buffer | null), interval = STALL_MS / 5) {
  const before = stalls();
  const started = Date.now();
  let trickle: NodeJS.Timeout | undefined;
  if (typeof data === 'function') {
    trickle = setInterval(() => {
      const next = data();
      if (next && !socket.destroyed) socket.write(next);
    }, interval);
  } else socket.write(data);
  try {
    await eventually(() => socket.destroyed, PATIENCE_MS, 'the daemon to close the stalled connection');
  } finally {
    clearInterval(trickle);
  }
  expect(stalls()).toBe(before + 1);
  return Date.now() - started;
}

async function waylandClient(): Promise<RawWaylandClient> {
  const client = new RawWaylandClient(await connectFrom(C.pid, WAYLAND_TARGET));
  opened.push(client);
  await client.roundtrip();
  return client;
}

/** The first bytes of a 4096-byte Wayland request: its header says how long it is. */
function wayland4096(prefix: number): Buffer {
  const message = Buffer.alloc(MAX_MESSAGE_SIZE);
  message.writeUInt32LE(1, 0);
  message.writeUInt32LE((MAX_MESSAGE_SIZE << 16) >>> 0, 4);
  return message.subarray(0, prefix);
}

describe('a Wayland client', () => {
  it('that sends the first bytes of a 4096-byte message and stalls is closed after the limit', async () => {
    const idle = await waylandClient();
    const stalled = await waylandClient();
    const took = await stallWith(stalled.socket, wayland4096(HEADER_SIZE + 92));
    expect(took).toBeGreaterThanOrEqual(STALL_MS);
    // The client idle all along between messages, a new client and weston itself are untouched.
    await idle.roundtrip();
    const fresh = await waylandClient();
    await fresh.globals();
    expect(weston.process.exitCode).toBeNull();
  });

  it('that trickles one message byte by byte, slower than the limit allows, is closed all the same', async () => {
    const client = await waylandClient();
    const message = wayland4096(MAX_MESSAGE_SIZE);
    let sent = 0;
    const took = await stallWith(client.socket, () =>
      sent < message.length ? message.subarray(sent, ++sent) : null,
    );
    expect(took).toBeGreaterThanOrEqual(STALL_MS);
    expect(sent).toBeLessThan(message.length);
  });
});

async function busClient(): Promise<DBusPeer> {
  const peer = new DBusPeer(await connectFrom(C.pid, BUS_TARGET));
  opened.push(peer);
  return peer;
}

async function authenticated(): Promise<DBusPeer> {
  const peer = await busClient();
  peer.write(`\0AUTH EXTERNAL ${uidToHex(0)}\r\n`);
  expect(await peer.readLine()).toMatch(/^OK /);
  await peer.begin();
  return peer;
}

const whoAmI = (peer: DBusPeer) =>
  peer.call({ destination: SERVICE, path: SERVICE_PATH, interface: SERVICE, member: 'WhoAmI' });

describe('a D-Bus client', () => {
  it('that stalls inside a message is closed after the limit; the bus and other clients carry on', async () => {
    const idle = await authenticated();
    const stalled = await authenticated();
    const echo = marshal({
      type: MessageType.METHOD_CALL,
      flags: 0,
      serial: 50,
      destination: SERVICE,
      path: SERVICE_PATH,
      interface: SERVICE,
      member: 'Echo',
      signature: 'ay',
      body: [Buffer.alloc(4096, 7)],
    });
    const took = await stallWith(stalled.socket, echo.subarray(0, 100));
    expect(took).toBeGreaterThanOrEqual(STALL_MS);
    expect((await whoAmI(idle)).message.body).toEqual([1001]);
    expect((await whoAmI(await authenticated())).message.body).toEqual([1001]);
  });

  it('that stalls inside a SASL line is closed after the limit', async () => {
    const stalled = await busClient();
    const took = await stallWith(stalled.socket, Buffer.from('\0AUTH EXTERNAL'));
    expect(took).toBeGreaterThanOrEqual(STALL_MS);
    expect((await whoAmI(await authenticated())).message.body).toEqual([1001]);
  });
});

describe('an HTTP client', () => {
  it('that stalls inside a request head is closed after the limit; the server carries on', async () => {
    const stalled = await connectFrom(C.pid, WEB_TARGET);
    stalled.on('end', () => stalled.end());
    stalled.resume();
    opened.push({ close: () => stalled.destroy() });
    const took = await stallWith(stalled, Buffer.from('GET / HTTP/1.1\r\nHost: web\r\n'));
    expect(took).toBeGreaterThanOrEqual(STALL_MS);
    const client = await connectFrom(C.pid, WEB_TARGET);
    const answer = readToEnd(client);
    client.write(Buffer.from('GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n'));
    expect((await answer).data.toString()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
  });
});
