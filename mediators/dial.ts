// The start every socket mediator shares: dial the provider for one consumer connection, then hand the provider's
// socket to `start` (which relays the two): at once when the provider's socket is known and dialled without
// credentials, else when the dial completes. A failed dial closes the consumer's connection and is counted; the
// link stays up.
import type { ByteRelay } from '../native/byte-relay.js';
import { FdSocket } from '../native/fd-socket.js';
import { closeFds } from '../native/fds.js';
import type { Credentials, LinkContext } from './types.js';

/** For a connection the addon relays: `start` gets the provider's fd. */
export function dialProviderFd(
  consumer: FdSocket | ByteRelay,
  link: LinkContext,
  start: (providerFd: number) => void,
  credentials?: Credentials,
): void {
  const now = credentials ? null : link.dialProviderNow();
  if (now !== null) {
    start(now);
    return;
  }
  link.dialProvider(credentials).then(
    (fd) => {
      // The consumer may have gone away while we dialed.
      if (consumer.destroyed) closeFds([fd]);
      else start(fd);
    },
    (error: Error) => {
      link.counters.connections.failed += 1;
      link.log.warn('provider connection failed', { socket: link.spec.socket, error: error.message });
      consumer.destroy();
    },
  );
}

/** For a connection relayed in JavaScript: `start` gets the provider as an FdSocket. */
export function dialProviderFor(
  consumer: FdSocket,
  link: LinkContext,
  start: (provider: FdSocket) => void,
  credentials?: Credentials,
): void {
  dialProviderFd(
    consumer,
    link,
    (fd) => {
      let provider: FdSocket;
      try {
        provider = new FdSocket(fd);
      } catch {
        closeFds([fd]); // only fails when memory is short: drop this one connection
        consumer.destroy();
        return;
      }
      start(provider);
    },
    credentials,
  );
}
