// A provider container running a real dbus-daemon with its own /etc/passwd, /etc/group and XML policy, and the
// org.pvx.Test service on that bus (a DBusPeer connected from inside the provider). Root only.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeFd } from '../native/fds.js';
import { connectIn, readFileIn } from '../native/namespace.js';
import { type Container, startContainer } from './container.js';
import { type Answer, DBusPeer, type Received } from './dbus-peer.js';
import { contentOf, eventually, fileWithContent, PATIENCE_MS } from './mesh.js';

export const BUS_SOCKET = '/run/dbus/system_bus_socket';
/** Where the tests start dbus-broker beside the provider's dbus-daemon. */
export const BROKER_SOCKET = '/run/dbus/broker.sock';

/**
 * The provider's two buses as a test reaches them: its dbus-daemon and a dbus-broker, each through links named
 * `<bus>-<role>` planted at `target(role, bus)`; `daemonBus` names the dbus-daemon's links.
 */
export function providerBuses<const D extends string>(daemonBus: D) {
  const buses = [
    { implementation: 'dbus-daemon', bus: daemonBus, socket: BUS_SOCKET },
    { implementation: 'dbus-broker', bus: 'broker', socket: BROKER_SOCKET },
  ] as const;
  const target = (role: string, bus: D | 'broker' = daemonBus) => `/run/pv/services/${bus}-${role}.sock`;
  const address = (role: string, bus: D | 'broker') => `unix:path=${target(role, bus)}`;
  return { buses, target, address };
}
export const SERVICE = 'org.pvx.Test';
export const SERVICE_PATH = '/org/pvx/Test';

/** The provider's users: the roles of the tests resolve against these, never against the host's. */
export const PASSWD = `root:x:0:0:root:/root:/bin/sh
operator:x:1001:1001:operator:/nonexistent:/usr/sbin/nologin
numeric:x:1002:1002::/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`;
export const GROUP = `root:x:0:
operator:x:1001:
numeric:x:1002:
pvx-admins:x:3000:root,operator
nogroup:x:65534:
`;

/** Bus limits far above what a test or a bench sends (128 MiB messages, 1 GB queued, 50000 pending replies). */
export const GENEROUS_BUS_LIMITS = `  <limit name="max_message_size">134217728</limit>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_replies_per_connection">50000</limit>`;

/** What both test buses allow every connection: replies to its own calls, and to receive anything. */
const REPLIES_AND_RECEIVING = `    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>`;

/**
 * Everyone may connect and talk to the bus and call the harmless methods; only root may own the service's name;
 * `Restricted` is allowed for operator and explicitly denied to nobody. Every mechanism is enabled, ANONYMOUS
 * included, so a refusal of the others can only come from the mediator.
 */
export const POLICY = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=${BUS_SOCKET}</listen>
  <allow_anonymous/>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
${REPLIES_AND_RECEIVING}
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="${SERVICE}" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="${SERVICE}" send_interface="${SERVICE}" send_member="WhoAmI"/>
    <allow send_destination="${SERVICE}" send_interface="${SERVICE}" send_member="PassFd"/>
    <allow send_destination="${SERVICE}" send_interface="${SERVICE}" send_member="Echo"/>
  </policy>
  <policy user="root">
    <allow own="${SERVICE}"/>
  </policy>
  <policy user="operator">
    <allow send_destination="${SERVICE}" send_interface="${SERVICE}" send_member="Restricted"/>
  </policy>
  <policy user="nobody">
    <deny send_destination="${SERVICE}" send_interface="${SERVICE}" send_member="Restricted"/>
  </policy>
${GENEROUS_BUS_LIMITS}
</busconfig>
`;

/**
 * A bus that lets everyone do everything (own any name, call anything, eavesdrop): what a provider without a bus
 * policy of its own looks like, so that any refusal can only come from the link's `allow`.
 */
export const OPEN_POLICY = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=${BUS_SOCKET}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
${REPLIES_AND_RECEIVING}
    <allow eavesdrop="true"/>
  </policy>
${GENEROUS_BUS_LIMITS}
</busconfig>
`;

export interface ProviderBus {
  readonly container: Container;
  /** A connection from inside the provider, as root, to its bus (or to another bus socket in it). */
  connect(options?: { unixFds?: boolean; socket?: string }): Promise<DBusPeer>;
  stop(): Promise<void>;
}

/** Starts a provider container with its accounts and policy, and dbus-daemon listening on BUS_SOCKET. */
export async function startProviderBus(policy = POLICY): Promise<ProviderBus> {
  const dir = mkdtempSync(join(tmpdir(), 'pvx-dbus-bus-'));
  writeFileSync(join(dir, 'passwd'), PASSWD);
  writeFileSync(join(dir, 'group'), GROUP);
  writeFileSync(join(dir, 'bus.conf'), policy);
  const container = await startContainer({
    setup: [
      `mount --bind ${dir}/passwd /etc/passwd`,
      `mount --bind ${dir}/group /etc/group`,
      'mkdir -p /run/dbus',
    ].join('\n'),
  });
  const daemon = container.spawn([
    'dbus-daemon',
    `--config-file=${dir}/bus.conf`,
    '--nofork',
    '--nopidfile',
    '--nosyslog',
  ]);
  let output = '';
  daemon.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const stop = async () => {
    await container.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // The policy's users were resolved from the provider's passwd: its /etc really is ours.
    if (
      (await readFileIn({ pid: container.pid, path: '/etc/passwd', maxBytes: 4096 })).toString() !== PASSWD
    ) {
      throw new Error('the provider does not see its own /etc/passwd');
    }
    // A bus that listens but never answers (a policy that blocks Hello's reply) must fail the start, not hang it.
    let timer: NodeJS.Timeout | undefined;
    const answered = eventually(
      () => connectIn({ pid: container.pid, path: BUS_SOCKET }).then((fd) => DBusPeer.connect(fd)),
      PATIENCE_MS,
      'dbus-daemon to listen',
    );
    answered.catch(() => {}); // reported through the race below, or moot once the bus is stopped
    const silent = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('dbus-daemon did not answer Hello')), PATIENCE_MS);
    });
    try {
      (await Promise.race([answered, silent])).close();
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${output}`);
    } finally {
      clearTimeout(timer);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    container,
    async connect({ socket = BUS_SOCKET, ...options } = {}) {
      return DBusPeer.connect(await connectIn({ pid: container.pid, path: socket }), options);
    },
    stop,
  };
}

const INTROSPECTION = `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="${SERVICE}">
    <method name="WhoAmI"><arg type="u" direction="out"/></method>
    <method name="Restricted"><arg type="s" direction="out"/></method>
    <method name="Echo"><arg type="ay" direction="in"/><arg type="ay" direction="out"/></method>
    <method name="PassFd">
      <arg type="h" direction="in"/><arg type="s" direction="out"/><arg type="h" direction="out"/>
    </method>
  </interface>
</node>
`;

/**
 * The service on the provider's bus (or on the bus at `socket` in the provider), owning SERVICE:
 * - WhoAmI() → u: what the bus answers to GetConnectionUnixUser on the caller's unique name;
 * - Restricted() → s: "allowed" (the policy decides who gets here);
 * - Echo(ay) → ay;
 * - PassFd(h) → (s, h): the content of the passed file, and a new file holding `service saw: <content>`.
 */
export async function startTestService(bus: ProviderBus, socket = BUS_SOCKET): Promise<DBusPeer> {
  const service = await bus.connect({ unixFds: true, socket });
  const answer = async ({ message, fds }: Received): Promise<Answer> => {
    if (message.interface === 'org.freedesktop.DBus.Introspectable' && message.member === 'Introspect') {
      return { signature: 's', body: [INTROSPECTION] };
    }
    if (message.interface !== SERVICE) return unknown(message.member);
    switch (message.member) {
      case 'WhoAmI': {
        const uid = await service.callBus('GetConnectionUnixUser', 's', [message.sender ?? '']);
        if (typeof uid !== 'number') throw new Error(`GetConnectionUnixUser answered ${uid}`);
        return { signature: 'u', body: [uid] };
      }
      case 'Restricted':
        return { signature: 's', body: ['allowed'] };
      case 'Echo':
        return { signature: message.signature, body: message.body };
      case 'PassFd': {
        const [fd] = fds;
        if (fd === undefined) return { error: 'org.pvx.Test.Error.NoFd', message: 'no fd arrived' };
        const content = contentOf(fd);
        return { signature: 'sh', body: [content, 0], fds: [fileWithContent(`service saw: ${content}`)] };
      }
      default:
        return unknown(message.member);
    }
  };
  service.serve(async (call) => {
    try {
      return await answer(call);
    } finally {
      for (const fd of call.fds) closeFd(fd);
    }
  });
  const reply = await service.callBus('RequestName', 'su', [SERVICE, 4]);
  if (reply !== 1) throw new Error(`could not own ${SERVICE}: RequestName answered ${reply}`);
  return service;
}

function unknown(member: string | undefined): Answer {
  return { error: 'org.freedesktop.DBus.Error.UnknownMethod', message: `no method ${member}` };
}
