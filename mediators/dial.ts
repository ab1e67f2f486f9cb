// The start every socket mediator shares: dial the provider for one consumer connection, then hand both sockets to
// `start` (which relays them). A failed dial closes the consumer's connection and is counted; the link stays up.
import type { FdSocket } from '../native/fd-socket.js';
import type { Credentials, LinkContext } from './types.js';

export function dialProviderFor(
  consumer: FdSocket,
  link: LinkContext,
  start: (provider: FdSocket) => void,
  credentials?: Credentials,
): void {
  link.dialProvider(credentials).then(
    (provider) => {
      // The consumer may have gone away while we dialed.
      if (consumer.destroyed) provider.destroy();
      else start(provider);
    },
    (error: Error) => {
      link.counters.connections.failed += 1;
      link.log.warn('provider connection failed', { socket: link.spec.socket, error: error.message });
      consumer.destroy();
    },
  );
}
