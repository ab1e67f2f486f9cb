// wayland: a protocol-aware relay between a client and a compositor. Each connection gets a WaylandConnection that
// frames both directions into messages, forwards every message with exactly its fds (at most 28 per write), tracks
// object ids to know each message's layout, and hides the globals the link's role may not see. The policy comes
// from the JSON file named by PVX_WAYLAND_POLICY when the link is added, else the built-in default (docs/wayland.md).
import { readFile } from 'node:fs/promises';
import { dialProviderFor } from './dial.js';
import { relay } from './relay.js';
import type { Mediator } from './types.js';
import { WaylandConnection } from './wayland-connection.js';
import { DEFAULT_POLICY, parsePolicy, visibilityFor } from './wayland-policy.js';

export const POLICY_ENV = 'PVX_WAYLAND_POLICY';
/** Policies are small; a bigger file is a mistake, not a policy. */
const MAX_POLICY_BYTES = 1 << 20;

export interface WaylandLinkState {
  visible: (iface: string) => boolean;
}

async function loadPolicy() {
  const path = process.env[POLICY_ENV];
  if (!path) return DEFAULT_POLICY;
  try {
    const bytes = await readFile(path);
    if (bytes.length > MAX_POLICY_BYTES) throw new Error(`larger than ${MAX_POLICY_BYTES} bytes`);
    return parsePolicy(bytes.toString('utf8'));
  } catch (error) {
    throw new Error(`${POLICY_ENV}=${path}: ${(error as Error).message}`);
  }
}

export const waylandMediator: Mediator<WaylandLinkState> = {
  type: 'wayland',
  async add(link) {
    return { visible: visibilityFor(await loadPolicy(), link.spec.role) };
  },
  onConnection(consumer, link, state) {
    dialProviderFor(consumer, link, (provider) => {
      const connection = new WaylandConnection({ visible: state.visible, log: link.log });
      relay(consumer, provider, {
        counters: link.counters,
        limits: link.relayLimits,
        log: link.log,
        toProvider: connection.toProvider,
        toConsumer: connection.toConsumer,
      });
    });
  },
};
