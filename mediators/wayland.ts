// wayland: a protocol-aware relay between a client and a compositor. Each connection gets a WaylandConnection that
// frames both directions into messages, forwards every message with exactly its fds (at most 28 per write), tracks
// object ids to know each message's layout, and hides the globals the link's role may not see. Which globals those
// are (docs/wayland.md): the provider's `allow` entries for the role that list `globals` show exactly those; else
// the role filter of the host file named by the daemon's settings (PVX_WAYLAND_POLICY), read when a link is added,
// or the built-in default. An allow list never widens what a role sees by being there: an entry without `globals`,
// or a plain role name, keeps the role filter.
import { matchesAny, type Narrowing } from '../protocols/graph/allow.js';
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
  /** The rule that hides a global from this link's role, as a refusal names it. */
  rule: string;
}

/**
 * What the role sees: a global is shown when any one of its allow entries shows it, an entry with `globals` showing
 * exactly those and one without showing what `filter` (the role filter) shows. No narrowing: the role filter.
 */
export function globalsVisible(
  narrowings: readonly Narrowing[] | null,
  filter: (iface: string) => boolean,
): (iface: string) => boolean {
  if (narrowings === null) return filter;
  const listed = narrowings.flatMap((narrowing) =>
    narrowing.globals === undefined ? [] : [narrowing.globals],
  );
  const filtered = listed.length < narrowings.length;
  return (iface) => (filtered && filter(iface)) || listed.some((globals) => matchesAny(globals, iface));
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
      const { role } = link.spec;
      const byAllow = link.narrowings?.every((narrowing) => narrowing.globals !== undefined) ?? false;
      // The role filter is only read when it decides something.
      const filter = byAllow ? () => false : visibilityFor(await loadPolicy(), role);
      return {
        visible: globalsVisible(link.narrowings, filter),
        rule: byAllow
          ? `${role}: globals`
          : `${role}: ${options.policyFile === null ? 'built-in role filter' : where}`,
      };
    },
    onConnection(consumer, link, state) {
      dialProviderFor(consumer, link, (provider) => {
        const connection = new WaylandConnection({
          visible: state.visible,
          log: link.log,
          refused: (what) => link.refused({ rule: state.rule, what }),
        });
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
