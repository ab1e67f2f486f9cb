// unix: a plain byte-and-fd relay between the consumer and the provider's socket.
import { dialProviderFor } from './dial.js';
import { relay } from './relay.js';
import type { Mediator } from './types.js';

export const unixMediator: Mediator<void> = {
  type: 'unix',
  async add() {},
  onConnection(consumer, link) {
    dialProviderFor(consumer, link, (provider) =>
      relay(consumer, provider, { counters: link.counters, limits: link.relayLimits, log: link.log }),
    );
  },
};
