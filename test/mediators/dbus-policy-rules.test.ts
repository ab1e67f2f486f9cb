// The D-Bus policy's rules on marshalled messages, without a bus: which calls a narrowed role may send, and the
// refusal each other one gets (the end-to-end behaviour with real clients is in dbus-policy.test.ts).
import { beforeAll, describe, expect, it } from 'vitest';
import { DBusCallPolicy, loadMatchRuleParser } from '../../mediators/dbus-policy.js';
import {
  type DBusMessageInit,
  type DBusValue,
  MessageType,
  marshal,
  readRoutingFields,
} from '../../protocols/dbus/index.js';
import type { Narrowing } from '../../protocols/graph/allow.js';

const DRIVER = 'org.freedesktop.DBus';

let policy: DBusCallPolicy;
let open: DBusCallPolicy;

const ENTRIES: Narrowing[] = [
  {
    interfaces: ['org.example.Device', 'org.example.Sensor*'],
    paths: ['/org/example/*'],
    own: ['org.example.Mine'],
  },
  { members: ['Status'], paths: ['/admin'], own: ['org.example.Own.*'] },
];

beforeAll(async () => {
  const rules = await loadMatchRuleParser();
  policy = new DBusCallPolicy('viewer', ENTRIES, rules);
  // An entry that narrows nothing but ownership.
  open = new DBusCallPolicy('viewer', [{}], rules);
});

function message(init: Partial<DBusMessageInit> & { signature?: string; body?: DBusValue[] }): Buffer {
  return marshal({ type: MessageType.METHOD_CALL, flags: 0, serial: 7, path: '/', member: 'M', ...init });
}

function judge(on: DBusCallPolicy, init: Parameters<typeof message>[0]) {
  const bytes = message(init);
  return on.judge(readRoutingFields(bytes), bytes);
}

const driver = (member: string, fields: Parameters<typeof message>[0] = {}) =>
  ({ destination: DRIVER, path: '/org/freedesktop/DBus', interface: DRIVER, member, ...fields }) as const;

describe('calls to services', () => {
  it('are allowed when one entry matches interface, member and path', () => {
    for (const call of [
      { interface: 'org.example.Device', member: 'Anything', path: '/org/example/x' },
      { interface: 'org.example.SensorBus', member: 'Read', path: '/org/example/sensors/1' },
      // The second entry: any interface (or none), member Status, path /admin.
      { interface: 'org.example.Other', member: 'Status', path: '/admin' },
      { member: 'Status', path: '/admin' },
    ]) {
      expect(judge(policy, { destination: 'org.example.Svc', ...call }), JSON.stringify(call)).toBeNull();
    }
  });

  it('are refused, naming the fields that did not match in any entry', () => {
    expect(
      judge(policy, {
        destination: 'org.example.Svc',
        interface: 'org.example.Admin',
        member: 'Reboot',
        path: '/admin',
      }),
    ).toEqual({
      rule: 'viewer: interfaces, members',
      what: 'call org.example.Admin.Reboot on /admin to org.example.Svc',
      errorName: 'org.freedesktop.DBus.Error.AccessDenied',
      text: "pv-xconnect: the provider's policy does not let role 'viewer' call org.example.Admin.Reboot on /admin to org.example.Svc",
    });
    expect(
      judge(policy, { destination: ':1.4', interface: 'org.example.Device', member: 'Get', path: '/other' })
        ?.rule,
    ).toBe('viewer: paths, members');
    // Without INTERFACE, an entry that names interfaces does not match.
    expect(
      judge(policy, { destination: 'org.example.Svc', member: 'Get', path: '/org/example/x' })?.what,
    ).toBe('call Get on /org/example/x to org.example.Svc');
    expect(judge(policy, { member: 'Get', path: '/org/example/x', interface: 'x.Y' })?.what).toBe(
      'call x.Y.Get on /org/example/x to (no destination)',
    );
  });

  it('signals, replies and errors are not judged', () => {
    for (const type of [MessageType.SIGNAL, MessageType.METHOD_RETURN, MessageType.ERROR]) {
      const fields =
        type === MessageType.SIGNAL
          ? { interface: 'org.example.Admin', member: 'Boom', path: '/x' }
          : type === MessageType.ERROR
            ? { replySerial: 3, errorName: 'org.example.Error', destination: ':1.1' }
            : { replySerial: 3, destination: ':1.1' };
      expect(judge(policy, { type, ...fields }), String(type)).toBeNull();
    }
  });
});

describe('calls to the bus driver', () => {
  it('allows the read-only ones, with or without INTERFACE, whatever the entries narrow', () => {
    for (const member of [
      'Hello',
      'GetNameOwner',
      'ListNames',
      'GetId',
      'GetConnectionCredentials',
      'ReleaseName',
    ]) {
      expect(judge(policy, driver(member)), member).toBeNull();
      expect(judge(policy, driver(member, { interface: undefined })), member).toBeNull();
    }
    expect(judge(policy, driver('Ping', { interface: 'org.freedesktop.DBus.Peer' }))).toBeNull();
    expect(
      judge(policy, driver('Introspect', { interface: 'org.freedesktop.DBus.Introspectable' })),
    ).toBeNull();
    expect(judge(policy, driver('GetAll', { interface: 'org.freedesktop.DBus.Properties' }))).toBeNull();
  });

  it('refuses what changes the bus or widens what the role sees', () => {
    for (const [iface, member] of [
      [DRIVER, 'StartServiceByName'],
      [DRIVER, 'UpdateActivationEnvironment'],
      [DRIVER, 'ReloadConfig'],
      ['org.freedesktop.DBus.Monitoring', 'BecomeMonitor'],
      [undefined, 'BecomeMonitor'],
      ['org.freedesktop.DBus.Properties', 'Set'],
      ['org.freedesktop.DBus.Debug.Stats', 'GetAllMatchRules'],
      // A driver method from the read-only list, under another interface.
      ['org.freedesktop.DBus.Monitoring', 'GetId'],
    ] as const) {
      const verdict = judge(policy, driver(member, { interface: iface }));
      expect(verdict?.rule, `${iface}.${member}`).toBe('viewer: bus driver');
      expect(verdict?.what).toBe(`call ${iface ?? DRIVER}.${member} to ${DRIVER}`);
    }
  });

  it('lets RequestName through only for a name some entry owns', () => {
    const request = (name: string) => driver('RequestName', { signature: 'su', body: [name, 0] });
    expect(judge(policy, request('org.example.Mine'))).toBeNull();
    expect(judge(policy, request('org.example.Own.A'))).toBeNull();
    expect(judge(policy, request('org.example.Other'))).toMatchObject({
      rule: 'viewer: own',
      what: 'RequestName org.example.Other',
    });
    // An object entry without own owns nothing.
    expect(judge(open, request('org.example.Mine'))?.rule).toBe('viewer: own');
    // A name that cannot be read is refused.
    expect(judge(policy, driver('RequestName', { signature: 'u', body: [1] }))?.what).toBe(
      'RequestName (no name)',
    );
  });

  it('lets AddMatch through only for a well-formed rule without eavesdrop', () => {
    const addMatch = (rule: string) => driver('AddMatch', { signature: 's', body: [rule] });
    expect(judge(policy, addMatch("type='signal',interface='org.example.Device'"))).toBeNull();
    expect(judge(policy, addMatch(''))).toBeNull();
    expect(judge(policy, addMatch('eavesdrop=false'))).toBeNull();
    expect(judge(policy, addMatch("type='signal',eavesdrop='true'"))).toMatchObject({
      rule: 'viewer: eavesdrop',
      errorName: 'org.freedesktop.DBus.Error.AccessDenied',
    });
    expect(judge(policy, addMatch("path='/a',path_namespace='/b'"))).toMatchObject({
      rule: 'viewer: match rule',
      what: 'AddMatch with a malformed rule (path with path_namespace)',
      errorName: 'org.freedesktop.DBus.Error.MatchRuleInvalid',
      text: 'pv-xconnect: malformed match rule: path with path_namespace',
    });
    // RemoveMatch is never judged: removing a rule cannot widen anything.
    expect(judge(policy, driver('RemoveMatch', { signature: 's', body: ['eavesdrop=true'] }))).toBeNull();
  });
});
