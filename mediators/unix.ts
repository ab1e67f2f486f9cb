// unix: a plain byte-and-fd relay between the consumer and the provider's socket, dialled as root or, when the
// service asks for it, as the link's role (role-credentials.ts). Its bytes need no look, so the addon relays
// them (native/byte-relay.ts).
import { dialProviderFd } from './dial.js';
import { dialCredentials } from './role-credentials.js';
import type { Credentials, Mediator } from './types.js';

export interface UnixLinkState {
  /** Who the provider is dialled as; undefined: the daemon itself. */
  credentials: Credentials | undefined;
}

export const unixMediator: Mediator<UnixLinkState> = {
  type: 'unix',
  async add(link) {
    return { credentials: await dialCredentials(link) };
  },
  dialsAsDaemon: ({ credentials }) => credentials === undefined,
  onRelayedConnection(consumer, link, { credentials }) {
    dialProviderFd(consumer, link, (providerFd) => consumer.start(providerFd), credentials);
  },
};
