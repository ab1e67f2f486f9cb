// dbus: a consumer's bus connection, made to the provider's bus as the link's role.
//
// Each consumer connection gets its own connection to the provider's bus, dialled with the role's uid, gid and
// groups, so the bus's SO_PEERCRED check and its XML policy see the role. A DBusConnection (dbus-connection.ts)
// mediates the SASL handshake until BEGIN. When the provider's policy narrows the role, whole messages with their
// fds follow in both directions, the calls the consumer sends judged first (dbus-policy.ts); otherwise the addon
// relays the rest of the connection as bytes and fds, the bus judging every message as the role's.
import { DBusConnection } from './dbus-connection.js';
import { DBusCallPolicy, DBusPolicySession, loadMatchRuleParser } from './dbus-policy.js';
import { dialProviderFor } from './dial.js';
import { relay } from './relay.js';
import { linkCredentials } from './role-credentials.js';
import type { Credentials, Mediator } from './types.js';

export interface DBusLinkState {
  credentials: Credentials;
  /** The role's narrowings, null when the policy does not narrow it. */
  policy: DBusCallPolicy | null;
}

export const dbusMediator: Mediator<DBusLinkState> = {
  type: 'dbus',
  async add(link) {
    const credentials = await linkCredentials(link);
    link.log.info('dbus identity', { role: link.spec.role, ...credentials });
    const policy =
      link.narrowings === null
        ? null
        : new DBusCallPolicy(link.spec.role, link.narrowings, await loadMatchRuleParser());
    return { credentials, policy };
  },
  onConnection(consumer, link, { credentials, policy }) {
    dialProviderFor(
      consumer,
      link,
      (provider) =>
        new DBusConnection(
          credentials.uid,
          (filters) =>
            relay(consumer, provider, {
              counters: link.counters,
              limits: link.relayLimits,
              log: link.log,
              ...filters,
            }),
          link.relayInAddon,
          policy ? new DBusPolicySession(policy, (refusal) => link.refused(refusal)) : undefined,
        ),
      credentials,
    );
  },
};
