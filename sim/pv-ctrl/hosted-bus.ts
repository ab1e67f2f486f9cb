// The Pantavisor-hosted system bus, as upstream generates it (dbus_daemon.c): a uid per role from a reserved
// range, a dbus-daemon configuration with a default-deny base, a policy block per owned name and allowed role,
// and a private passwd that resolves each role's uid to `pv-dbus-<role>`. Pure: text in, text out.
import type { HostedBusName } from './manifests.js';

/** Upstream's first role uid and the user name prefix of a role in the daemon's passwd. */
export const ROLE_UID_BASE = 90000;
export const ROLE_USER_PREFIX = 'pv-dbus-';
/** The managed daemon's name in `/daemons`, and where upstream keeps the bus (the simulator: per instance). */
export const HOSTED_BUS_DAEMON = 'pv-dbus';
export const UPSTREAM_BUS_SOCKET = '/run/pv/dbus/system_bus_socket';

/** A name declaration with the container that made it. */
export interface OwnedName extends HostedBusName {
  platform: string;
}

/**
 * Role → uid, allocated from ROLE_UID_BASE in the order upstream meets the roles: the policy generator's pass over
 * the owned names (owner role, then each allowed role), then the graph's requirement roles.
 */
export function allocateRoleUids(
  names: readonly OwnedName[],
  requirementRoles: readonly string[],
): Map<string, number> {
  const uids = new Map<string, number>();
  const allocate = (role: string) => {
    if (!uids.has(role)) uids.set(role, ROLE_UID_BASE + uids.size);
  };
  for (const name of names) {
    allocate(name.role);
    for (const role of name.allow) allocate(role);
  }
  for (const role of requirementRoles) allocate(role);
  return uids;
}

export const roleUser = (role: string) => `${ROLE_USER_PREFIX}${role}`;

const DOCTYPE =
  '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n' +
  ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n';

/**
 * The bus's own configuration: a system bus on `socket`, EXTERNAL auth only; by default every connection is
 * accepted, owning names and calling methods are denied (the bus driver excepted), replies, errors and signals
 * flow; the generated policy in `policyDir` grants the rest.
 */
export function busConfig(socket: string, policyDir: string): string {
  return `${DOCTYPE}<busconfig>
  <type>system</type>
  <listen>unix:path=${xml(socket)}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_destination="org.freedesktop.DBus"/>
    <allow receive_sender="org.freedesktop.DBus"/>
    <allow receive_type="method_call"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_requested_reply="true" receive_type="method_return"/>
    <allow receive_requested_reply="true" receive_type="error"/>
    <allow send_type="signal"/>
    <allow receive_type="signal"/>
  </policy>
  <includedir>${xml(policyDir)}</includedir>
</busconfig>
`;
}

/** One block per owned name (its owner role may own, call and hear it) and per allowed role (call and hear). */
export function busPolicy(names: readonly OwnedName[], uids: ReadonlyMap<string, number>): string {
  const blocks = names.flatMap((name) => [
    `  <!-- ${xml(name.platform)} owns ${xml(name.owns)} (owner role '${xml(name.role)}' uid ${uids.get(name.role)}) -->
  <policy user="${xml(roleUser(name.role))}">
    <allow own="${xml(name.owns)}"/>
    <allow send_destination="${xml(name.owns)}"/>
    <allow receive_sender="${xml(name.owns)}"/>
  </policy>`,
    ...name.allow.map(
      (role) => `  <!-- caller role '${xml(role)}' uid ${uids.get(role)} -> ${xml(name.owns)} -->
  <policy user="${xml(roleUser(role))}">
    <allow send_destination="${xml(name.owns)}"/>
    <allow receive_sender="${xml(name.owns)}"/>
  </policy>`,
    ),
  ]);
  return `${DOCTYPE}<busconfig>\n${blocks.map((block) => `${block}\n`).join('')}</busconfig>\n`;
}

/** `base` (the host's passwd, so root and the daemon's own users resolve) and a user for every role. */
export function busPasswd(base: string, uids: ReadonlyMap<string, number>): string {
  const head = base === '' || base.endsWith('\n') ? base : `${base}\n`;
  const roles = [...uids].map(
    ([role, uid]) => `${roleUser(role)}:x:${uid}:${uid}::/nonexistent:/usr/sbin/nologin\n`,
  );
  return `${head}${roles.join('')}`;
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
