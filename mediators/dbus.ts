// dbus: a consumer's bus connection, made to the provider's bus as the link's role.
//
// Each consumer connection gets its own connection to the provider's bus, dialled with the role's uid, gid and
// groups, so the bus's SO_PEERCRED check and its XML policy see the role. A DBusConnection (dbus-connection.ts)
// mediates the SASL handshake until BEGIN, then whole messages with their fds in both directions.
import { DBusConnection } from './dbus-connection.js';
import { linkCredentials } from './dbus-identity.js';
import { dialProviderFor } from './dial.js';
import { relay } from './relay.js';
import type { Credentials, Mediator } from './types.js';

export interface DBusLinkState {
  credentials: Credentials;
}

export const dbusMediator: Mediator<DBusLinkState> = {
  type: 'dbus',
  async add(link) {
    const credentials = await linkCredentials(link);
    link.log.info('dbus identity', { role: link.spec.role, ...credentials });
    return { credentials };
  },
  onConnection(consumer, link, { credentials }) {
    dialProviderFor(
      consumer,
      link,
      (provider) =>
        new DBusConnection(credentials.uid, (filters) =>
          relay(consumer, provider, {
            counters: link.counters,
            limits: link.relayLimits,
            log: link.log,
            ...filters,
          }),
        ),
      credentials,
    );
  },
};
