// The D-Bus mediator end to end: a provider container with a real dbus-daemon (its own passwd, group and XML
// policy) and a dbus-broker (allow-all), the org.pvx.Test service on each, and a consumer container whose clients
// (dbus-send, gdbus, busctl, dbus-next and a raw client on the native layer) reach both buses through the daemon's
// dbus links, one link per role and bus.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../daemon/daemon.js';
import type { Fields } from '../../log/logger.js';
import { FdSocket } from '../../native/fd-socket.js';
import { connectIn } from '../../native/namespace.js';
import { MAX_SASL_LINE_LENGTH, MessageType, marshal, uidToHex } from '../../protocols/dbus/index.js';
import { type Container, startContainer } from '../../testkit/container.js';
import { type Broker, startBroker } from '../../testkit/dbus-broker.js';
import {
  BROKER_SOCKET,
  BUS_SOCKET,
  type ProviderBus,
  providerBuses,
  SERVICE,
  SERVICE_PATH,
  startProviderBus,
  startTestService,
} from '../../testkit/dbus-bus.js';
import { BUS_NAME, BUS_PATH, DBusCallError, DBusPeer } from '../../testkit/dbus-peer.js';
import { OWN_NAME, TOOL_CLIENTS, type ToolCall } from '../../testkit/dbus-tools.js';
import { FakeCtrl } from '../../testkit/fake-ctrl.js';
import {
  allLinksActive,
  closeAll,
  connectFrom,
  contentOf,
  eventually,
  fileWithContent,
  type GraphEntry,
  graphEntry,
  PATIENCE_MS,
  type Provider,
  recordingLogger,
  startProvider,
  startTestDaemon,
} from '../../testkit/mesh.js';

const ROLES = [
  { role: 'root', uid: 0 },
  { role: 'operator', uid: 1001 },
  { role: '1002', uid: 1002 },
  { role: 'any', uid: 65534 },
] as const;
type Role = (typeof ROLES)[number]['role'];

const CREDENTIALS_SOCKET = '/run/credentials.sock';

let work: string;
let ctrl: FakeCtrl;
let bus: ProviderBus;
let broker: Broker;
const services: DBusPeer[] = [];
let C: Container;
let credentialsProbe: Provider;
const upstreamCredentials: { uid: number; gid: number; groups: number[] }[] = [];
let daemon: Daemon;
let graph: GraphEntry[];
const logs: Fields[] = [];

/** The provider's two buses, each reached through its own links (named `<bus>-<role>`). */
const { buses: BUSES, target, address } = providerBuses('bus');
type Bus = (typeof BUSES)[number]['bus'];

function dbusLink(role: string, socket: string, name: string, allow?: unknown[]): GraphEntry {
  return graphEntry('dbus', C, bus.container, { name, role, socket, ...(allow ? { allow } : {}) });
}

/** A link whose role the policy narrows (to the test service): its messages are framed by the mediator. The links
 * of roles it does not narrow are relayed by the addon after BEGIN. */
const NARROWED = 'narrowed-operator';
const NARROWED_TARGET = `/run/pv/services/${NARROWED}.sock`;
const ECHO_CALL = {
  destination: SERVICE,
  path: SERVICE_PATH,
  interface: SERVICE,
  member: 'Echo',
  signature: 'ay',
};

/** A raw client inside the consumer, through the link of `role`, before any SASL byte. */
async function rawClient(role: Role, bus: Bus = 'bus'): Promise<DBusPeer> {
  return new DBusPeer(await connectFrom(C.pid, target(role, bus)));
}

function rejections(): string[] {
  return logs.filter((line) => line.event === 'connection rejected').map((line) => String(line.reason));
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-dbus-test-'));
  ctrl = new FakeCtrl(join(work, 'pv-ctrl'));
  await ctrl.start();
  [bus, C] = await Promise.all([startProviderBus(), startContainer()]);
  broker = await startBroker(bus.container.pid, BROKER_SOCKET);
  for (const { socket } of BUSES) services.push(await startTestService(bus, socket));
  // Not a bus: a socket in the provider that records the credentials the mediator dials it with.
  credentialsProbe = await startProvider(bus.container.pid, CREDENTIALS_SOCKET, (socket: FdSocket) => {
    upstreamCredentials.push({ ...socket.peerCred(), groups: socket.peerGroups() });
    socket.destroy();
  });
  graph = [
    ...BUSES.flatMap(({ bus, socket }) => ROLES.map(({ role }) => dbusLink(role, socket, `${bus}-${role}`))),
    dbusLink('operator', CREDENTIALS_SOCKET, 'credentials'),
    dbusLink('operator', BUS_SOCKET, NARROWED, [{ role: 'operator', interfaces: [SERVICE] }]),
  ];
  ctrl.setGraph(graph);
  daemon = await startTestDaemon(ctrl, {
    log: recordingLogger(logs),
  });
  await allLinksActive(daemon);
});

afterAll(async () => {
  await daemon?.stop();
  credentialsProbe?.close();
  for (const service of services) service.close();
  await broker?.stop();
  await Promise.all([bus?.stop(), C?.stop(), ctrl?.stop()]);
  rmSync(work, { recursive: true, force: true });
});

describe('the upstream connection', () => {
  it('carries the role uid, gid and groups from the provider passwd and group files', async () => {
    // The daemon's own reachability probe dialled it already, as itself (its connection may still wait to be
    // accepted here): only the connection's dial counts.
    await eventually(() => upstreamCredentials.some((peer) => peer.uid === 0), PATIENCE_MS, 'the probe');
    const before = upstreamCredentials.length;
    const client = await connectFrom(C.pid, '/run/pv/services/credentials.sock');
    const dialled = await eventually(() => upstreamCredentials[before], PATIENCE_MS, 'the mediator to dial');
    client.destroy();
    expect(dialled).toMatchObject({ uid: 1001, gid: 1001 });
    expect(dialled.groups.sort((a, b) => a - b)).toEqual([1001, 3000]);
  });
});

const serviceCall = (member: string): ToolCall => ({
  destination: SERVICE,
  path: SERVICE_PATH,
  interface: SERVICE,
  member,
});

/** dbus-next asks the bus about its own unique name, which the CLI tools cannot know before their one call. */
const OWN_UID: ToolCall = {
  destination: BUS_NAME,
  path: BUS_PATH,
  interface: BUS_NAME,
  member: 'GetConnectionUnixUser',
  args: [OWN_NAME],
};

/**
 * Each client calls `member` through the link of `role` and returns what it printed, normalized to the value
 * (`1001`, `allowed`) or `error <D-Bus error name>`. WhoAmI: the CLI tools cannot learn their own unique name
 * before their one call, so the service asks the bus GetConnectionUnixUser(<caller's unique name>); dbus-next
 * and the raw client ask the bus about their own unique name themselves.
 */
const clients: Record<string, (role: Role, member: 'WhoAmI' | 'Restricted', bus?: Bus) => Promise<string>> = {
  ...Object.fromEntries(
    Object.entries(TOOL_CLIENTS).map(([name, tool]) => [
      name,
      (role: Role, member: string, bus: Bus = 'bus') =>
        tool(
          C,
          address(role, bus),
          member === 'WhoAmI' && name === 'dbus-next (npm)' ? OWN_UID : serviceCall(member),
        ),
    ]),
  ),
  'raw client on the native layer': async (role, member, bus = 'bus') => {
    const peer = await rawClient(role, bus);
    try {
      peer.write(`\0AUTH EXTERNAL ${uidToHex(0)}\r\n`);
      expect(await peer.readLine()).toMatch(/^OK [0-9a-f]{32}$/);
      await peer.begin();
      if (member === 'WhoAmI')
        return String(await peer.callBus('GetConnectionUnixUser', 's', [peer.uniqueName]));
      const { message } = await peer.call({
        destination: SERVICE,
        path: SERVICE_PATH,
        interface: SERVICE,
        member,
      });
      return String(message.body[0]);
    } catch (error) {
      if (error instanceof DBusCallError) return `error ${error.errorName}`;
      throw error;
    } finally {
      peer.close();
    }
  },
};

describe.each(BUSES)('through the mediator to $implementation', ({ bus }) => {
  describe.each(Object.entries(clients))('%s', (_name, call) => {
    it.each(ROLES)('is exactly uid $uid on the bus with role $role', async ({ role, uid }) => {
      expect(await call(role, 'WhoAmI', bus)).toBe(String(uid));
    });
  });
});

describe.each(Object.entries(clients))('%s through the mediator to dbus-daemon', (_name, call) => {
  it("gets what the provider's XML policy allows operator and denies nobody", async () => {
    expect(await call('operator', 'Restricted')).toBe('allowed');
    expect(await call('any', 'Restricted')).toBe('error org.freedesktop.DBus.Error.AccessDenied');
  });
});

/** BEGIN after an OK, then what the bus says about our own connection. */
async function uidAfterBegin(peer: DBusPeer): Promise<unknown> {
  await peer.begin();
  return peer.callBus('GetConnectionUnixUser', 's', [peer.uniqueName]);
}

/** The next lines the client reads, up to the end of its connection. */
async function linesUntilClosed(peer: DBusPeer): Promise<string[]> {
  const lines: string[] = [];
  for (let line = await peer.readLine(); line !== null; line = await peer.readLine()) lines.push(line);
  await peer.closed;
  return lines;
}

const ROOT_HEX = uidToHex(0);
const OK = /^OK [0-9a-f]{32}$/;

describe.each(BUSES)(
  'forged identities through the operator link (uid 1001) to $implementation',
  ({ bus }) => {
    it('AUTH EXTERNAL 30 (uid 0) becomes uid 1001', async () => {
      const peer = await rawClient('operator', bus);
      peer.write(`\0AUTH EXTERNAL ${ROOT_HEX}\r\n`);
      expect(await peer.readLine()).toMatch(OK);
      expect(await uidAfterBegin(peer)).toBe(1001);
      peer.close();
    });

    it('AUTH EXTERNAL then DATA 30, pipelined with NEGOTIATE_UNIX_FD, becomes uid 1001', async () => {
      const peer = await rawClient('operator', bus);
      peer.write(`\0AUTH EXTERNAL\r\nDATA ${ROOT_HEX}\r\nNEGOTIATE_UNIX_FD\r\n`);
      expect(await peer.readLine()).toBe('DATA');
      expect(await peer.readLine()).toMatch(OK);
      expect(await peer.readLine()).toBe('AGREE_UNIX_FD');
      expect(await uidAfterBegin(peer)).toBe(1001);
      peer.close();
    });
  },
);

describe('other mechanisms through the operator link', () => {
  it('AUTH ANONYMOUS, which this bus accepts, is answered REJECTED EXTERNAL by the mediator', async () => {
    // The control: asked directly, the provider's bus lets an anonymous client in.
    const direct = new DBusPeer(new FdSocket(await connectIn({ pid: bus.container.pid, path: BUS_SOCKET })));
    direct.write('\0AUTH ANONYMOUS\r\n');
    expect(await direct.readLine()).toMatch(OK);
    direct.close();

    const peer = await rawClient('operator');
    peer.write('\0AUTH ANONYMOUS\r\n');
    expect(await peer.readLine()).toBe('REJECTED EXTERNAL');
    // The connection goes on, and what it gets is still the role.
    peer.write(`AUTH EXTERNAL ${ROOT_HEX}\r\n`);
    expect(await peer.readLine()).toMatch(OK);
    expect(await uidAfterBegin(peer)).toBe(1001);
    peer.close();
  });

  it('AUTH DBUS_COOKIE_SHA1 and a bare AUTH are answered REJECTED EXTERNAL', async () => {
    const peer = await rawClient('operator');
    peer.write(`\0AUTH DBUS_COOKIE_SHA1 ${Buffer.from('root').toString('hex')}\r\nAUTH\r\n`);
    expect(await peer.readLine()).toBe('REJECTED EXTERNAL');
    expect(await peer.readLine()).toBe('REJECTED EXTERNAL');
    peer.close();
  });
});

describe('refused handshakes: an ERROR line with the reason, then the connection is closed', () => {
  it.each([
    {
      what: 'a second AUTH after OK',
      send: [`\0AUTH EXTERNAL ${ROOT_HEX}\r\n`, `AUTH EXTERNAL ${ROOT_HEX}\r\n`],
      replies: [OK, /^ERROR "?AUTH after the bus accepted the client/],
      reason: 'AUTH after the bus accepted the client',
    },
    {
      what: 'message data before BEGIN',
      send: [
        `\0AUTH EXTERNAL ${ROOT_HEX}\r\n`,
        marshal({
          type: MessageType.METHOD_CALL,
          flags: 0,
          serial: 1,
          destination: BUS_NAME,
          path: BUS_PATH,
          interface: BUS_NAME,
          member: 'Hello',
        }),
      ],
      replies: [OK, /^ERROR "?message data before BEGIN/],
      reason: 'message data before BEGIN',
    },
    {
      what: 'BEGIN before OK',
      send: ['\0AUTH ANONYMOUS\r\nBEGIN\r\n'],
      replies: [/^REJECTED EXTERNAL$/, /^ERROR "?BEGIN before the bus accepted the client/],
      reason: 'BEGIN before the bus accepted the client',
    },
  ])('$what', async ({ send, replies, reason }) => {
    const peer = await rawClient('operator');
    const lines: string[] = [];
    for (const [i, data] of send.entries()) {
      peer.write(data);
      // Each write but the last is answered before the next goes out.
      if (i < send.length - 1) lines.push(String(await peer.readLine()));
    }
    lines.push(...(await linesUntilClosed(peer)));
    expect(lines).toHaveLength(replies.length);
    for (const [i, reply] of replies.entries()) expect(lines[i]).toMatch(reply);
    await eventually(() => rejections().includes(reason), PATIENCE_MS, 'the logged reason');
  });

  it('a 1 MiB SASL line', async () => {
    const peer = await rawClient('operator');
    peer.write(`\0AUTH EXTERNAL ${'3'.repeat(1 << 20)}\r\n`);
    // The half-close lets the mediator, which reads and drops the rest of a refused line, close as soon as it
    // has all of it: the client is never left writing into a closed socket, so its ERROR line is never lost.
    peer.socket.end();
    const lines = await linesUntilClosed(peer);
    expect(lines).toEqual([`ERROR SASL line longer than ${MAX_SASL_LINE_LENGTH} bytes`]);
    await eventually(
      () => rejections().some((reason) => reason.includes('longer than')),
      PATIENCE_MS,
      'the reason',
    );
  });

  it('unix fds sent with SASL lines', async () => {
    const peer = await rawClient('operator');
    const fd = fileWithContent('too early');
    peer.write(`\0AUTH EXTERNAL ${ROOT_HEX}\r\n`, [fd]);
    const lines = await linesUntilClosed(peer);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(OK);
    expect(lines[1]).toMatch(/^ERROR "?unix fds sent before BEGIN/);
  });
});

/** A raw client through the operator link that negotiated unix fds. */
async function fdClient(link: 'operator' | typeof NARROWED = 'operator'): Promise<DBusPeer> {
  const peer =
    link === NARROWED ? new DBusPeer(await connectFrom(C.pid, NARROWED_TARGET)) : await rawClient(link);
  peer.write(`\0AUTH EXTERNAL ${ROOT_HEX}\r\nNEGOTIATE_UNIX_FD\r\n`);
  expect(await peer.readLine()).toMatch(OK);
  expect(await peer.readLine()).toBe('AGREE_UNIX_FD');
  await peer.begin();
  return peer;
}

/** A call to the service that declares `unixFds` fds (PassFd with one, WhoAmI with none). */
function callDeclaring(unixFds: number): Buffer {
  return marshal({
    type: MessageType.METHOD_CALL,
    flags: 0,
    serial: 100,
    destination: SERVICE,
    path: SERVICE_PATH,
    interface: SERVICE,
    ...(unixFds > 0 ? { member: 'PassFd', signature: 'h', body: [0], unixFds } : { member: 'WhoAmI' }),
  });
}

describe('unix fds and messages after BEGIN', () => {
  it('a file passed as h reaches the service in the provider and a new one comes back', async () => {
    const link = daemon.reconciler.list().find((entry) => entry.spec.role === 'operator');
    const fdsBefore = { ...link?.counters.fds };
    const peer = await fdClient();
    const fd = fileWithContent('through the mediator');
    const { message, fds } = await peer.call({
      destination: SERVICE,
      path: SERVICE_PATH,
      interface: SERVICE,
      member: 'PassFd',
      signature: 'h',
      body: [0],
      fds: [fd],
    });
    expect(message.body[0]).toBe('through the mediator');
    expect(fds).toHaveLength(1);
    expect(contentOf(fds[0] as number)).toBe('service saw: through the mediator');
    closeAll(fds);
    peer.close();
    expect(link?.counters.fds.toProvider).toBe((fdsBefore.toProvider ?? 0) + 1);
    expect(link?.counters.fds.toConsumer).toBe((fdsBefore.toConsumer ?? 0) + 1);
  });

  it('a signal from the service reaches a subscribed client', async () => {
    const peer = await fdClient();
    await peer.callBus('AddMatch', 's', [`type='signal',interface='${SERVICE}'`]);
    const received = new Promise<unknown>((resolve) =>
      peer.onSignal(({ message }) => resolve(message.body[0])),
    );
    services[0]?.emitSignal(SERVICE_PATH, SERVICE, 'Changed', 's', ['news']);
    expect(await received).toBe('news');
    peer.close();
  });

  it.each([
    {
      what: 'a message that declares an fd that never came',
      send: () => ({ data: callDeclaring(1), fds: [] }),
      reason: 'a message declares 1 unix fds but 0 arrived',
    },
    {
      what: 'an fd that no message declares',
      send: () => ({ data: callDeclaring(0), fds: [fileWithContent('stray')] }),
      reason: '1 unix fds arrived that no message declares',
    },
    {
      what: 'bytes that are not a message',
      send: () => ({ data: Buffer.from('X'.repeat(64)), fds: [] }),
      reason: 'malformed message',
    },
  ])('$what closes the connection with the reason logged, on a narrowed link', async ({ send, reason }) => {
    const peer = await fdClient(NARROWED);
    const { data, fds } = send();
    peer.write(data, fds);
    await peer.closed;
    await eventually(
      () => rejections().some((logged) => logged.startsWith(reason)),
      PATIENCE_MS,
      'the reason',
    );
  });
});

/** Connections the daemon has handed to the addon's byte relay so far. */
const handedOff = () => logs.filter((line) => line.event === 'connection handed off').length;

describe('a link whose role the policy does not narrow, after BEGIN', () => {
  it('hands each connection to the addon once, where a narrowed link keeps it', async () => {
    const before = handedOff();
    const narrowed = await fdClient(NARROWED);
    expect((await narrowed.call({ ...ECHO_CALL, body: [Buffer.from('framed')] })).message.body[0]).toEqual(
      Buffer.from('framed'),
    );
    narrowed.close();
    expect(handedOff()).toBe(before);
    const plain = await fdClient();
    expect((await plain.call({ ...ECHO_CALL, body: [Buffer.from('relayed')] })).message.body[0]).toEqual(
      Buffer.from('relayed'),
    );
    plain.close();
    expect(handedOff()).toBe(before + 1);
  });

  it('passes bytes that are not a message to the bus, which closes the connection itself', async () => {
    const rejected = rejections().length;
    const peer = await fdClient();
    peer.write(Buffer.from('X'.repeat(64)));
    await peer.closed;
    // The mediator framed nothing: the bus judged the bytes, and the daemon refused nothing.
    expect(rejections()).toHaveLength(rejected);
  });

  it('carries fds and counts them, with the bytes of the handshake and of the messages, in the link', async () => {
    const link = daemon.reconciler.list().find((entry) => entry.spec.name === 'bus-operator');
    const before = structuredClone(link?.counters);
    const peer = await fdClient();
    const call = { destination: SERVICE, path: SERVICE_PATH, interface: SERVICE };
    const { fds } = await peer.call({
      ...call,
      member: 'PassFd',
      signature: 'h',
      body: [0],
      fds: [fileWithContent('counted')],
    });
    closeAll(fds);
    const echoed = await peer.call({
      ...call,
      member: 'Echo',
      signature: 'ay',
      body: [Buffer.alloc(10_000, 1)],
    });
    expect(echoed.message.body[0]).toEqual(Buffer.alloc(10_000, 1));
    peer.close();
    const after = link?.counters;
    expect(after?.fds.toProvider).toBe((before?.fds.toProvider ?? 0) + 1);
    expect(after?.fds.toConsumer).toBe((before?.fds.toConsumer ?? 0) + 1);
    // The echo carries 10 000 bytes each way; the handshake alone is well under 1000 bytes each way.
    expect((after?.bytes.toConsumer ?? 0) - (before?.bytes.toConsumer ?? 0)).toBeGreaterThan(10_000);
    expect((after?.bytes.toProvider ?? 0) - (before?.bytes.toProvider ?? 0)).toBeGreaterThan(10_000);
  });
});

describe('a link that leaves the graph', () => {
  it('ends the connections the addon relays for it', async () => {
    const before = handedOff();
    const peer = await fdClient();
    expect((await peer.call({ ...ECHO_CALL, body: [Buffer.from('last')] })).message.body[0]).toEqual(
      Buffer.from('last'),
    );
    expect(handedOff()).toBe(before + 1);
    ctrl.setGraph(graph.filter((entry) => entry.name !== 'bus-operator'));
    await peer.closed;
  });
});

describe('after all of the above', () => {
  it('no mediated connection is left open', async () => {
    await eventually(
      () => daemon.reconciler.list().every((link) => link.counters.connections.active === 0),
      PATIENCE_MS,
      'every connection to close',
    );
  });
});
