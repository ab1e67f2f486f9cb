// The provider's access policy on dbus links, end to end: a provider whose dbus-daemon (and dbus-broker) let
// everyone do everything, and the links' `allow` doing the restricting. dbus-send, gdbus, busctl and dbus-next in a consumer container
// (and a raw client on the native layer for what the tools cannot send) call through a narrowed role and through
// an unnarrowed one; the service on the bus records every call it receives.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../daemon/daemon.js';
import { linkStatus } from '../../daemon/status-api.js';
import type { Fields } from '../../log/logger.js';
import { FdSocket } from '../../native/fd-socket.js';
import { closeFd } from '../../native/fds.js';
import { connectIn } from '../../native/namespace.js';
import {
  DBusFramer,
  type DBusMessage,
  MessageFlag,
  MessageType,
  marshal,
  uidToHex,
  unmarshal,
} from '../../protocols/dbus/index.js';
import { type Container, startContainer } from '../../testkit/container.js';
import { type Broker, startBroker } from '../../testkit/dbus-broker.js';
import {
  BROKER_SOCKET,
  BUS_SOCKET,
  OPEN_POLICY,
  type ProviderBus,
  providerBuses,
  startProviderBus,
} from '../../testkit/dbus-bus.js';
import {
  BUS_NAME,
  BUS_PATH,
  type Call,
  DBusCallError,
  DBusPeer,
  type Received,
} from '../../testkit/dbus-peer.js';
import { TOOL_CLIENTS, type ToolCall } from '../../testkit/dbus-tools.js';
import { FakeCtrl } from '../../testkit/fake-ctrl.js';
import {
  eventually,
  fileWithContent,
  graphEntry,
  openFdCount,
  PATIENCE_MS,
  recordingLogger,
  startTestDaemon,
} from '../../testkit/mesh.js';

const SERVICE = 'org.pvx.Policy';
const PATH = '/org/pvx/Policy';
const READER = 'org.pvx.Policy.Reader';
const ADMIN = 'org.pvx.Policy.Admin';
const ACCESS_DENIED = 'org.freedesktop.DBus.Error.AccessDenied';

/** operator: reads, Admin.Status, and names under org.pvx.Owned.; root: anything. `any` is not listed. */
const ALLOW = [
  'root',
  {
    role: 'operator',
    interfaces: [READER, 'org.freedesktop.DBus.Introspectable'],
    paths: ['/org/pvx/*'],
    own: ['org.pvx.Owned.*'],
  },
  { role: 'operator', interfaces: [ADMIN], members: ['Status'], paths: [PATH] },
];
const ROLES = ['operator', 'root'] as const;
type Role = (typeof ROLES)[number];

const INTROSPECTION = `<node>
  <interface name="${READER}"><method name="Get"><arg type="s" direction="out"/></method>
    <method name="Notify"/><signal name="Changed"/></interface>
  <interface name="${ADMIN}"><method name="Status"><arg type="s" direction="out"/></method>
    <method name="Reboot"><arg type="s" direction="out"/></method></interface>
</node>`;

let work: string;
let ctrl: FakeCtrl;
let bus: ProviderBus;
let service: DBusPeer;
let broker: Broker;
let brokerService: DBusPeer;
/** Every call the service received: `interface.member`. */
const received: string[] = [];
/** Signals from consumers the service saw. */
const consumerSignals: string[] = [];
let C: Container;
let daemon: Daemon;
const logs: Fields[] = [];

/** The provider's two buses, each reached through a link per role (named `<bus>-<role>`). */
const { buses: BUSES, target, address } = providerBuses('policy');
type Bus = (typeof BUSES)[number]['bus'];

function linkOf(role: string, on: Bus = 'policy') {
  const link = daemon.reconciler.list().find((candidate) => candidate.spec.name === `${on}-${role}`);
  if (!link) throw new Error(`no link ${on}-${role}`);
  return link;
}

function denied(role: Role, on: Bus = 'policy'): number {
  return linkStatus(linkOf(role, on), null).denied;
}

async function startService(socket: string): Promise<DBusPeer> {
  const peer = await bus.connect({ unixFds: true, socket });
  peer.serve(async ({ message, fds }: Received) => {
    for (const fd of fds) closeFd(fd);
    received.push(`${message.interface}.${message.member}`);
    switch (`${message.interface}.${message.member}`) {
      case 'org.freedesktop.DBus.Introspectable.Introspect':
        return { signature: 's', body: [INTROSPECTION] };
      case `${READER}.Get`:
        return { signature: 's', body: ['value'] };
      case `${READER}.Notify`:
        peer.emitSignal(PATH, READER, 'Changed');
        return {};
      case `${READER}.CallBack`: {
        const { message: answer } = await peer.call({
          destination: message.sender,
          path: '/client',
          interface: 'org.pvx.Client',
          member: 'Answer',
        });
        return { signature: 's', body: [String(answer.body[0])] };
      }
      case `${ADMIN}.Status`:
        return { signature: 's', body: ['fine'] };
      case `${ADMIN}.Reboot`:
        return { signature: 's', body: ['rebooted'] };
      default:
        return { error: 'org.freedesktop.DBus.Error.UnknownMethod', message: 'no such method' };
    }
  });
  peer.onSignal(({ message }) => consumerSignals.push(`${message.interface}.${message.member}`));
  await peer.callBus('AddMatch', 's', ["type='signal',interface='org.pvx.Client'"]);
  const owned = await peer.callBus('RequestName', 'su', [SERVICE, 4]);
  if (owned !== 1) throw new Error(`could not own ${SERVICE}: ${owned}`);
  return peer;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-dbus-policy-'));
  ctrl = new FakeCtrl(join(work, 'pv-ctrl'));
  await ctrl.start();
  [bus, C] = await Promise.all([startProviderBus(OPEN_POLICY), startContainer()]);
  broker = await startBroker(bus.container.pid, BROKER_SOCKET);
  service = await startService(BUS_SOCKET);
  brokerService = await startService(BROKER_SOCKET);
  ctrl.setGraph(
    BUSES.flatMap(({ bus: on, socket }) =>
      [...ROLES, 'any'].map((role) =>
        graphEntry('dbus', C, bus.container, { name: `${on}-${role}`, role, socket, allow: ALLOW }),
      ),
    ),
  );
  daemon = await startTestDaemon(ctrl, { log: recordingLogger(logs) });
  await eventually(
    () =>
      BUSES.every(
        ({ bus: on }) =>
          ROLES.every((role) => linkOf(role, on).state === 'active') && linkOf('any', on).state === 'failed',
      ),
    PATIENCE_MS,
    'the links to settle',
  );
});

afterAll(async () => {
  await daemon?.stop();
  service?.close();
  brokerService?.close();
  await broker?.stop();
  await Promise.all([bus?.stop(), C?.stop(), ctrl?.stop()]);
  rmSync(work, { recursive: true, force: true });
});

const get: ToolCall = { destination: SERVICE, path: PATH, interface: READER, member: 'Get' };
const reboot: ToolCall = { destination: SERVICE, path: PATH, interface: ADMIN, member: 'Reboot' };
const status: ToolCall = { destination: SERVICE, path: PATH, interface: ADMIN, member: 'Status' };
const requestName = (name: string): ToolCall => ({
  destination: BUS_NAME,
  path: BUS_PATH,
  interface: BUS_NAME,
  member: 'RequestName',
  args: [name, 4],
});

/** Each client makes one call through the link of `role`: the first value of the answer, or `error <name>`. */
const clients: Record<string, (role: Role, call: ToolCall, on?: Bus) => Promise<string>> = Object.fromEntries(
  Object.entries(TOOL_CLIENTS).map(([name, tool]) => [
    name,
    (role: Role, call: ToolCall, on: Bus = 'policy') => tool(C, address(role, on), call),
  ]),
);

describe.each(BUSES)('to $implementation', ({ bus: on }) => {
  it('a role the policy does not list fails its link, and nothing is planted', async () => {
    expect(linkOf('any', on).error).toBe(`role 'any' is not allowed by svc/${on}-any`);
    await expect(connectIn({ pid: C.pid, path: target('any', on) })).rejects.toThrow();
  });

  describe.each(Object.entries(clients))('%s', (name, call) => {
    it('makes an allowed call through the narrowed role', async () => {
      expect(await call('operator', get, on)).toBe('value');
      expect(await call('operator', status, on)).toBe('fine');
    });

    it('gets AccessDenied from the mediator for a narrowed-out call, which the service never sees', async () => {
      const before = denied('operator', on);
      received.length = 0;
      expect(await call('operator', reboot, on)).toBe(`error ${ACCESS_DENIED}`);
      expect(denied('operator', on)).toBe(before + 1);
      // The control: the same call through the unnarrowed role reaches the service, so the bus allows it.
      expect(await call('root', reboot, on)).toBe('rebooted');
      // (gdbus introspects the object first.)
      expect(
        received.filter((member) => member !== 'org.freedesktop.DBus.Introspectable.Introspect'),
      ).toEqual([`${ADMIN}.Reboot`]);
      expect(denied('root', on)).toBe(0);
    });

    it('may request a name under own, and no other', async () => {
      const owned = `org.pvx.Owned.${name.replace(/\W/g, '')}`;
      expect(await call('operator', requestName(owned), on)).toBe('1');
      expect(await call('operator', requestName('org.pvx.Other'), on)).toBe(`error ${ACCESS_DENIED}`);
      expect(await call('root', requestName('org.pvx.Other'), on)).toBe('1');
    });
  });
});

describe('refusals in the log and the counters', () => {
  it('logs one line per distinct refusal, naming the rule and the call, and counts every one', async () => {
    const what = `call ${ADMIN}.Reboot on ${PATH} to ${SERVICE}`;
    const before = denied('operator');
    for (let i = 0; i < 2; i++) {
      expect(await clients['dbus-send (libdbus)']?.('operator', reboot)).toBe(`error ${ACCESS_DENIED}`);
    }
    expect(denied('operator')).toBe(before + 2);
    // One per link: the dbus-broker link logged its own.
    const ofLink = (line: Fields) => line.event === 'access denied' && line.link === 'policy-operator';
    const lines = logs.filter((line) => ofLink(line) && line.what === what);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ role: 'operator', rule: 'operator: interfaces, members' });
    expect(logs.filter((line) => ofLink(line) && line.what === 'RequestName org.pvx.Other')).toEqual([
      expect.objectContaining({ rule: 'operator: own' }),
    ]);
  });
});

/** A raw client through the link of `role`, with unix fds, after Hello. */
async function rawPeer(role: Role): Promise<DBusPeer> {
  return DBusPeer.connect(await connectIn({ pid: C.pid, path: target(role) }), { unixFds: true });
}

async function errorOf(promise: Promise<unknown>): Promise<DBusCallError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DBusCallError) return error;
    throw error;
  }
  throw new Error('the call succeeded');
}

const driverCall = (member: string, fields: Partial<Call> = {}): Call => ({
  destination: BUS_NAME,
  path: BUS_PATH,
  interface: BUS_NAME,
  member,
  ...fields,
});

describe('a raw client through the narrowed role', () => {
  it('receives signals, and its own signals and replies reach the service', async () => {
    const peer = await rawPeer('operator');
    try {
      // The bus's own NameAcquired may still be on its way: wait for the service's signal.
      const changed = new Promise<string>((resolve) =>
        peer.onSignal(({ message }) => {
          if (message.interface !== 'org.freedesktop.DBus') resolve(`${message.interface}.${message.member}`);
        }),
      );
      await peer.callBus('AddMatch', 's', [`type='signal',interface='${READER}'`]);
      await peer.call({ destination: SERVICE, path: PATH, interface: READER, member: 'Notify' });
      expect(await changed).toBe(`${READER}.Changed`);
      // A call the service makes to the consumer: the consumer's reply passes the filter.
      peer.serve(() => ({ signature: 's', body: ['from the consumer'] }));
      const { message } = await peer.call({
        destination: SERVICE,
        path: PATH,
        interface: READER,
        member: 'CallBack',
      });
      expect(message.body[0]).toBe('from the consumer');
      peer.emitSignal('/client', 'org.pvx.Client', 'Hi');
      await eventually(() => consumerSignals.includes('org.pvx.Client.Hi'), PATIENCE_MS, 'the signal');
    } finally {
      peer.close();
    }
  });

  it('may make the read-only driver calls, with or without INTERFACE', async () => {
    const peer = await rawPeer('operator');
    try {
      expect(await peer.callBus('NameHasOwner', 's', [SERVICE])).toBe(true);
      expect(typeof (await peer.callBus('GetId'))).toBe('string');
      const { message } = await peer.call(
        driverCall('GetNameOwner', { interface: undefined, signature: 's', body: [SERVICE] }),
      );
      expect(message.body[0]).toBe(service.uniqueName);
      await peer.call(driverCall('Ping', { interface: 'org.freedesktop.DBus.Peer' }));
      const all = await peer.call(
        driverCall('GetAll', {
          interface: 'org.freedesktop.DBus.Properties',
          signature: 's',
          body: [BUS_NAME],
        }),
      );
      expect(all.message.signature).toBe('a{sv}');
    } finally {
      peer.close();
    }
  });

  it('is refused what changes the bus or widens what it sees, with a clear error', async () => {
    const peer = await rawPeer('operator');
    try {
      const eavesdrop = await errorOf(peer.callBus('AddMatch', 's', ["eavesdrop=true,type='method_call'"]));
      expect(eavesdrop.errorName).toBe(ACCESS_DENIED);
      const malformed = await errorOf(peer.callBus('AddMatch', 's', ["type='signal"]));
      expect(malformed.errorName).toBe('org.freedesktop.DBus.Error.MatchRuleInvalid');
      expect(malformed.message).toMatch(/malformed match rule: not a list of key=value pairs/);
      const badValue = await errorOf(peer.callBus('AddMatch', 's', ["type='bogus'"]));
      expect(badValue.message).toMatch(/type='bogus' is not a type_value/);
      for (const call of [
        driverCall('BecomeMonitor', {
          interface: 'org.freedesktop.DBus.Monitoring',
          signature: 'asu',
          body: [[], 0],
        }),
        driverCall('BecomeMonitor', { interface: undefined, signature: 'asu', body: [[], 0] }),
        driverCall('StartServiceByName', { signature: 'su', body: ['org.pvx.Nothing', 0] }),
        driverCall('UpdateActivationEnvironment', { signature: 'a{ss}', body: [[]] }),
        driverCall('ReloadConfig'),
        driverCall('GetAllMatchRules', { interface: 'org.freedesktop.DBus.Debug.Stats' }),
        driverCall('Set', {
          interface: 'org.freedesktop.DBus.Properties',
          signature: 'ssv',
          body: [BUS_NAME, 'Features', { signature: 's', value: 'x' }],
        }),
      ]) {
        expect((await errorOf(peer.call(call))).errorName, `${call.interface}.${call.member}`).toBe(
          ACCESS_DENIED,
        );
      }
      // A call without INTERFACE, where the entry names interfaces.
      const bare = await errorOf(peer.call({ destination: SERVICE, path: PATH, member: 'Get' }));
      expect(bare.errorName).toBe(ACCESS_DENIED);
      // Still usable after all that.
      expect(await peer.callBus('NameHasOwner', 's', [SERVICE])).toBe(true);
    } finally {
      peer.close();
    }
  });

  it('gets no answer to a refused call that expects none, and the fds of a refused call are closed', async () => {
    const peer = await rawPeer('operator');
    try {
      const before = denied('operator');
      received.length = 0;
      const file = fileWithContent('secret');
      const fdsBefore = openFdCount();
      const silent = marshal({
        type: MessageType.METHOD_CALL,
        flags: MessageFlag.NO_REPLY_EXPECTED,
        serial: 1000,
        destination: SERVICE,
        path: PATH,
        interface: ADMIN,
        member: 'Reboot',
        signature: 'h',
        body: [0],
        unixFds: 1,
      });
      peer.write(silent, [file]); // the socket takes the fd: it closes our copy once sent
      // Messages on one connection stay in order: once this answer is back, a reply to 1000 would have come.
      await peer.callBus('GetId');
      expect(denied('operator')).toBe(before + 1);
      expect(peer.strayReplies.filter((message) => message.replySerial === 1000)).toEqual([]);
      // The mediator (in this process) received a copy: the count is back below what it was once that is closed.
      await eventually(() => openFdCount() < fdsBefore, PATIENCE_MS, 'the refused fd to be closed');
      // The bus keeps one sender's messages in order: had Reboot gone on, the service would have it before Get.
      await peer.call({ destination: SERVICE, path: PATH, interface: READER, member: 'Get' });
      expect(received).toEqual([`${READER}.Get`]);
    } finally {
      peer.close();
    }
  });
});

describe('a client that pipelines everything in one write (as busctl does)', () => {
  it('gets the Hello reply first, then the refusal addressed to its unique name from the driver', async () => {
    const socket = new FdSocket(await connectIn({ pid: C.pid, path: target('operator') }));
    socket.on('error', () => {});
    let bytes = Buffer.alloc(0);
    socket.on('data', ({ data }: { data: Buffer }) => {
      bytes = Buffer.concat([bytes, data]);
    });
    const hello = marshal({
      type: MessageType.METHOD_CALL,
      flags: 0,
      serial: 1,
      destination: BUS_NAME,
      path: BUS_PATH,
      interface: BUS_NAME,
      member: 'Hello',
    });
    const refused = marshal({
      ...unmarshal(hello),
      serial: 2,
      destination: SERVICE,
      path: PATH,
      interface: ADMIN,
      member: 'Reboot',
    });
    socket.write(
      Buffer.concat([Buffer.from(`\0AUTH EXTERNAL ${uidToHex(0)}\r\nBEGIN\r\n`, 'latin1'), hello, refused]),
    );
    const messages = await eventually(
      () => {
        const end = bytes.indexOf('\r\n');
        if (end < 0) return undefined;
        const framed = new DBusFramer().push(bytes.subarray(end + 2)).map(({ bytes: one }) => unmarshal(one));
        return framed.some((message) => message.replySerial === 2) ? framed : undefined;
      },
      PATIENCE_MS,
      'the refusal',
    );
    socket.destroy();
    const replies = messages.filter((message: DBusMessage) => message.replySerial !== undefined);
    expect(replies.map((message) => [message.type, message.replySerial])).toEqual([
      [MessageType.METHOD_RETURN, 1],
      [MessageType.ERROR, 2],
    ]);
    const [welcome, error] = replies as [DBusMessage, DBusMessage];
    expect(error).toMatchObject({
      errorName: ACCESS_DENIED,
      sender: BUS_NAME,
      destination: welcome.body[0],
    });
  });
});
