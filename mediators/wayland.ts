// wayland: a protocol-aware relay between a client and a compositor. Each connection gets a WaylandConnection that
// frames both directions into messages, forwards every message with exactly its fds (at most 28 per write), tracks
// object ids to know each message's layout, and hides the globals the link's role may not see. The policy comes
// from the host file named by the daemon's settings (PVX_WAYLAND_POLICY), read when a link is added, else the
// built-in default (docs/wayland.md).
import { dialProviderFor } from './dial.js';
import { readTextFile } from './namespace-files.js';
import { relay } from './relay.js';
import { type Mediator, type Namespace, TerminalLinkError } from './types.js';
import { WaylandConnection } from './wayland-connection.js';
import {
  DEFAULT_POLICY,
  PolicyError,
  parsePolicy,
  visibilityFor,
  type WaylandPolicy,
} from './wayland-policy.js';

export const POLICY_ENV = 'PVX_WAYLAND_POLICY';
/** Policies are small; a bigger file is a mistake, not a policy. */
export const MAX_POLICY_FILE_BYTES = 1 << 20;

export interface WaylandOptions {
  /** The role policy file on the host (PVX_WAYLAND_POLICY); null: the built-in default. */
  policyFile: string | null;
}

export interface WaylandLinkState {
  visible: (iface: string) => boolean;
}

/**
 * `host` reads the policy file. A file that cannot be read fails the link for now (it is retried); one that is
 * too large or not a valid policy is a configuration mistake, and fails it until its spec changes.
 */
export function waylandMediator(
  options: WaylandOptions,
  host: Pick<Namespace, 'readFile'>,
): Mediator<WaylandLinkState> {
  const where = `${POLICY_ENV}=${options.policyFile}`;

  async function loadPolicy(): Promise<WaylandPolicy> {
    const path = options.policyFile;
    if (path === null) return DEFAULT_POLICY;
    let text: string;
    try {
      text = await readTextFile(host, path, MAX_POLICY_FILE_BYTES, 'the file');
    } catch (error) {
      const message = `${where}: ${(error as Error).message}`;
      throw (error as NodeJS.ErrnoException).code === 'EFBIG'
        ? new TerminalLinkError(`${message} (larger than ${MAX_POLICY_FILE_BYTES} bytes)`)
        : new Error(message);
    }
    try {
      return parsePolicy(text);
    } catch (error) {
      if (error instanceof PolicyError) throw new TerminalLinkError(`${where}: ${error.message}`);
      throw error;
    }
  }

  return {
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
}
