// The contract between the daemon and its mediator plugins. Mediators never open namespaces themselves: the
// daemon hands them each end of the link as a `Namespace`, that end's mount namespace pinned when the link
// first came up (never looked up by pid again).
import type { Logger } from '../log/logger.js';
import type { ByteRelay } from '../native/byte-relay.js';
import type { FdSocket } from '../native/fd-socket.js';
import type { MknodOptions, NodeStat } from '../native/namespace.js';
import type { Narrowing } from '../protocols/graph/allow.js';
import type { LinkSpec, LinkType } from '../protocols/graph/xconnect-graph.js';

export interface Credentials {
  uid: number;
  gid: number;
  groups: number[];
}

/** File and socket operations resolved inside one end's pinned mount namespace (pid 0 = the host), never
 * through a magic link. Once the pinned process is gone they fail (the link then goes pending), except unlink. */
export interface Namespace {
  /** The pid the end was pinned by: for logs. Not an identity (use readProcessFile for /proc/<pid>). */
  readonly pid: number;
  /** A non-blocking listening fd planted at `path` (atomically replacing a socket already there). */
  listen(path: string, mode: number): Promise<{ fd: number; ino: number; dev: number }>;
  /** A connected, non-blocking fd; with credentials, the peer sees exactly them (SO_PEERCRED). */
  connect(path: string, credentials?: Credentials): Promise<number>;
  /** `connect(path)` done at once when it can be (the socket `path` last led to still listens), else null. */
  connectNow(path: string): number | null;
  /** Removes `path` only while it is still the inode we planted. */
  unlink(path: string, ino: number): Promise<boolean>;
  stat(path: string): Promise<NodeStat>;
  mknod(node: MknodOptions): Promise<{ ino: number; dev: number }>;
  readFile(path: string, maxBytes: number): Promise<Buffer>;
  /** A file of the pinned process's own /proc/<pid> directory (e.g. `cgroup`), returned only if the process is
   * still alive after the read, so it is that process's and not a later one's with the same pid. */
  readProcessFile(name: string, maxBytes: number): Promise<string>;
}

/**
 * A link that cannot work as configured (a malformed policy, a role its provider's node does not serve, an identity
 * HTTP cannot carry): retrying cannot help, so the link stays `failed` until its spec changes. Any other error a
 * mediator throws is taken as transient, and the link is retried with backoff.
 */
export class TerminalLinkError extends Error {
  override name = 'TerminalLinkError';
}

export interface Traffic {
  toProvider: number;
  toConsumer: number;
}

export interface LinkCounters {
  /**
   * Consumer connections: open now, accepted in all, closed at once because the link was at its cap (`rejected`),
   * closed because the provider could not be dialled for them (`failed`).
   */
  connections: { active: number; total: number; rejected: number; failed: number };
  bytes: Traffic;
  fds: Traffic;
  /** Calls, requests or binds the link's access policy refused since the link was established. */
  denied: number;
}

/** Something the link's access policy refused: counted, and logged once per distinct (rule, what). */
export interface Refusal {
  /** The rule that refused it, in the policy's terms (e.g. `viewer: members`, `viewer: own`). */
  rule: string;
  /** What was refused, enough to write the policy from (e.g. `call org.example.Admin.Reboot on /`, `POST /x`). */
  what: string;
}

export interface RelayLimits {
  /** A connection with one direction closed and no traffic for this long is reaped. */
  idleHalfOpenMs: number;
  /** A connection whose sender stays this long inside one message (a line, a frame, a head) is closed. */
  messageStallMs: number;
}

export interface LinkContext {
  readonly spec: LinkSpec;
  readonly log: Logger;
  readonly counters: LinkCounters;
  readonly consumer: Namespace;
  readonly provider: Namespace;
  readonly relayLimits: RelayLimits;
  /**
   * What the provider's access policy lets the link's role do beyond using the link (docs/architecture.md, "Role-
   * based access policy"): null, no narrowing (no policy, or the role is listed by a plain string entry);
   * otherwise the role's object entries, of which any one may allow a thing. A role the policy does not list
   * never gets this far: its link fails before any mediator runs.
   */
  readonly narrowings: readonly Narrowing[] | null;
  /** A socket connected to the provider's `socket` inside its namespace: its fd, now the caller's. */
  dialProvider(credentials?: Credentials): Promise<number>;
  /** `dialProvider()` done at once when it can be (no credentials, the provider's socket known), else null. */
  dialProviderNow(): number | null;
  /**
   * Relays a consumer connection and its provider socket in the addon from now on, as a unix link's are: bytes and
   * fds, no look at them, no JavaScript per message (both fds now the link's). Counted as open until both close;
   * ended with the link.
   */
  relayInAddon(consumerFd: number, providerFd: number): void;
  /** Reports a refusal by the access policy (the mediator answers the consumer itself). */
  refused(refusal: Refusal): void;
  /** A remark about an active link shown in its status (null clears it). */
  note(text: string | null): void;
}

/**
 * One link type. A mediator with `onConnection` (or `onRelayedConnection`) is a socket type: the daemon plants a
 * listener at the link's target and hands it every accepted consumer connection. `add` prepares a link (and may fail it by throwing);
 * its result is passed back to `onConnection` and `remove`.
 */
export interface Mediator<State = unknown> {
  readonly type: LinkType;
  add(link: LinkContext): Promise<State>;
  remove?(link: LinkContext, state: State): Promise<void>;
  onConnection?(consumer: FdSocket, link: LinkContext, state: State): void;
  /**
   * Instead of `onConnection`, for a type whose bytes need no look: each accepted consumer connection as a
   * ByteRelay (native/byte-relay.ts) that waits for the provider's socket; the addon then relays the two
   * without entering JavaScript.
   */
  onRelayedConnection?(consumer: ByteRelay, link: LinkContext, state: State): void;
  /**
   * With `onRelayedConnection`: true when the link's provider is dialled as the daemon itself (no credentials).
   * Its connections are then dialled at once where they can be (`dialProviderNow`) and relayed by the addon with
   * nothing of the link's in JavaScript per connection; `onRelayedConnection` gets the others.
   */
  dialsAsDaemon?(state: State): boolean;
  /**
   * For links whose resources can change under them (device nodes): called on every poll while the link is
   * active; false re-establishes it. Links of other types cost no system call on an unchanged poll.
   */
  check?(link: LinkContext, state: State): Promise<boolean>;
}
