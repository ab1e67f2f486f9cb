// One link of the graph: its state, counters and what it planted. Socket types get a listener at the target
// inside the consumer; every accepted connection goes to the link's mediator.

import type { Logger } from '../log/logger.js';
import {
  type LinkContext,
  type LinkCounters,
  type Mediator,
  type Namespace,
  type Refusal,
  type RelayLimits,
  TerminalLinkError,
} from '../mediators/types.js';
import { ByteRelay, type RelayEnd, RelayTally } from '../native/byte-relay.js';
import { FdListener } from '../native/fd-listener.js';
import type { FdSocket } from '../native/fd-socket.js';
import { closeFd, closeFds } from '../native/fds.js';
import { HOST, type LinkSpec, linkKey, specHash } from '../protocols/graph/xconnect-graph.js';
import { narrowingsFor } from './access.js';
import type { End, EndError, Lease, Pins } from './plumbing.js';

export type LinkState = 'pending' | 'active' | 'failed';

/**
 * The context a link gives its mediator, with the narrowings as a plain field the link fills in each time it comes
 * up (before any mediator runs). A plain field, not a getter: V8 keeps an object literal with a getter in
 * dictionary mode, about 1 KiB more for every link.
 */
type OwnContext = Omit<LinkContext, 'narrowings'> & { narrowings: LinkContext['narrowings'] };

export interface LinkLimits extends RelayLimits {
  /** Connections beyond this are accepted and closed at once. */
  maxConnections: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

export const SOCKET_MODE = 0o666;

/** Distinct refusals logged per link; beyond them refusals are only counted (a consumer must not flood the log). */
const MAX_LOGGED_REFUSALS = 256;

/** The host pid (0 = the host itself) of one end, or null while that container is not running. */
export function endPid(name: string, pid: number): number | null {
  if (name === HOST) return 0;
  return pid > 0 ? pid : null;
}

/**
 * A link whose provider socket cannot be reached (absent, not a socket, or a symlink that leads nowhere inside
 * the provider) is failed and retried, so its state tells the truth; no consumer socket is planted until then.
 */
async function probe(context: LinkContext): Promise<void> {
  const path = context.spec.socket;
  try {
    closeFd(await context.provider.connect(path));
  } catch (error) {
    throw new Error(`provider socket unreachable: ${(error as Error).message}`);
  }
}

interface Planted {
  listener: FdListener;
  ino: number;
}

/** An error's message, with the end it came from when the message does not say. */
function describe(error: EndError): string {
  return error.end ? `${error.end}: ${error.message}` : error.message;
}

export class Link {
  readonly key: string;
  readonly hash: string;
  state: LinkState = 'pending';
  error: string | null = null;
  /** A remark from the mediator about the active link. */
  note: string | null = null;
  /** When the state last changed (ms since the epoch: a number costs a link less than a Date). */
  since = Date.now();
  private readonly ownCounters: LinkCounters = {
    connections: { active: 0, total: 0, rejected: 0, failed: 0 },
    bytes: { toProvider: 0, toConsumer: 0 },
    fds: { toProvider: 0, toConsumer: 0 },
    denied: 0,
  };
  /** What the addon's relays of this link moved (links whose connections it relays). */
  private tally: RelayTally | null = null;

  private readonly log: Logger;
  private readonly connections = new Set<FdSocket | ByteRelay>();
  private context: OwnContext | null = null;
  private leases: Lease[] = [];
  private mediatorState: unknown;
  private planted: Planted | null = null;
  private prepared = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private attempts = 0;
  private stopped = false;
  /** The end whose pinned process is gone: the link stays down until the graph names another process. */
  private gone: End | null = null;
  /** Refusals already logged, as `rule\nwhat`. */
  private refusalsLogged: Set<string> | null = null; // created with the first refusal: most links have none

  constructor(
    readonly spec: LinkSpec,
    private readonly mediator: Mediator | undefined,
    private readonly limits: LinkLimits,
    private readonly pins: Pins,
    log: Logger,
  ) {
    this.key = linkKey(spec);
    this.hash = specHash(spec);
    this.log = log.child({ consumer: spec.consumer, link: spec.name, type: spec.type });
  }

  get counters(): LinkCounters {
    this.tally?.readInto(this.ownCounters);
    this.ownCounters.connections.active = this.openConnections();
    return this.ownCounters;
  }

  /** Connections open now: those with a JavaScript object, and those the addon's tally holds. */
  private openConnections(): number {
    return this.connections.size + (this.tally?.running ?? 0);
  }

  /** Stopped, or an end is gone: nothing more is planted or dialled. */
  private get down(): boolean {
    return this.stopped || this.gone !== null;
  }

  /** Brings the link up, or leaves it pending or failed (never throws). */
  async start(): Promise<void> {
    const { spec } = this;
    if (this.down) return;
    const consumerPid = endPid(spec.consumer, spec.consumerPid);
    const providerPid = endPid(spec.provider, spec.providerPid);
    if (consumerPid === null || providerPid === null) {
      const [who, pid] =
        consumerPid === null ? [spec.consumer, spec.consumerPid] : [spec.provider, spec.providerPid];
      this.setState('pending', `container '${who}' is not running (pid ${pid})`);
      this.log.info('link pending', { reason: this.error });
      return;
    }
    if (!this.mediator) {
      this.setState('failed', `no mediator for type ${spec.type}`);
      this.log.warn('link failed', { error: this.error });
      return;
    }
    // Pinned once, when the link first comes up; retries reuse the pins, never the pids.
    this.context ??= this.pinEnds(consumerPid, providerPid);
    if (!this.context) return;
    try {
      await this.bringUp(this.mediator, this.context);
      if (this.down) return;
      this.attempts = 0;
      this.setState('active', null);
      this.log.info('link added', { target: spec.target, role: spec.role, provider: spec.provider });
    } catch (error) {
      if (this.stopped) return;
      await this.tearDown(this.mediator, this.context);
      if (this.gone) return;
      this.setState('failed', describe(error as EndError));
      // A configuration mistake stays until the spec changes (a new Link); anything else may pass.
      if (error instanceof TerminalLinkError)
        this.log.warn('link failed', { error: this.error, retry: false });
      else this.scheduleRetry();
    }
  }

  /**
   * Pins both ends, or leaves the link pending (a process already gone) or failed: a pid that is not a
   * container's waits for the graph to change (pinning it again would refuse it again); any other failure to pin
   * is retried.
   */
  private pinEnds(consumerPid: number, providerPid: number): OwnContext | null {
    const ends: [End, number][] = [
      ['consumer', consumerPid],
      ['provider', providerPid],
    ];
    try {
      const [consumer, provider] = ends.map(([end, pid]) => {
        const lease = this.pins.lease(pid, end, () => void this.endGone(end));
        this.leases.push(lease);
        return lease.namespace;
      }) as [Namespace, Namespace];
      return this.createContext(consumer, provider);
    } catch (error) {
      const end = ends[this.leases.length]?.[0] ?? 'consumer';
      this.releaseEnds();
      const { code, message } = error as NodeJS.ErrnoException;
      if (code === 'ESRCH') {
        this.gone = end;
        this.setState('pending', `${end} gone`);
        this.log.info('link pending', { reason: this.error });
      } else {
        this.setState('failed', `${end}: ${message}`);
        if (code === 'EPERM') this.log.warn('link failed', { error: this.error, retry: false });
        else this.scheduleRetry();
      }
      return null;
    }
  }

  /** The pinned process of `end` is gone: down to pending, what was planted removed, no retry. */
  private async endGone(end: End): Promise<void> {
    if (this.down) return;
    this.gone = end;
    clearTimeout(this.retryTimer);
    this.setState('pending', `${end} gone`);
    this.log.info('link pending', { reason: this.error });
    if (this.mediator && this.context) await this.tearDown(this.mediator, this.context);
  }

  /** For mediators that watch their resources: re-establishes the link when they changed under it. */
  async refresh(): Promise<void> {
    const { mediator, context } = this;
    if (this.state !== 'active' || !mediator?.check || !context || this.down) return;
    if (await mediator.check(context, this.mediatorState).catch(() => false)) return;
    this.log.info('link changed under it, re-establishing');
    await this.tearDown(mediator, context);
    await this.start();
  }

  get watched(): boolean {
    return this.mediator?.check !== undefined;
  }

  /** Takes the link down: listener closed, connections closed, planted socket removed if it is still ours. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.mediator && this.context) await this.tearDown(this.mediator, this.context);
    this.releaseEnds();
  }

  private releaseEnds(): void {
    for (const lease of this.leases.splice(0)) lease.release();
  }

  private async bringUp(mediator: Mediator, context: OwnContext): Promise<void> {
    // Before any mediator runs: a role the policy does not list gets nothing planted.
    context.narrowings = await narrowingsFor(this.spec, context.provider);
    if (this.down) return;
    this.mediatorState = await mediator.add(context);
    this.prepared = true;
    if (this.down || !(mediator.onConnection || mediator.onRelayedConnection)) return;
    await probe(context);
    const { fd, ino } = await context.consumer.listen(this.spec.target, SOCKET_MODE);
    const listener = new FdListener(fd);
    this.planted = { listener, ino };
    if (mediator.onRelayedConnection) listener.on('fd', (fd) => this.acceptRelayed(mediator, context, fd));
    else listener.on('connection', (socket) => this.accept(mediator, context, socket));
    listener.on('error', (error: Error) => this.log.warn('accept failed', { error: error.message }));
    // A stop (or an end gone) that raced with planting undoes it.
    if (this.down) await this.tearDown(mediator, context);
  }

  /** Counts a new connection; false when the link is at its cap (the caller closes it). */
  private admit(): boolean {
    const { connections } = this.ownCounters;
    if (this.openConnections() >= this.limits.maxConnections) {
      connections.rejected += 1;
      return false;
    }
    connections.total += 1;
    return true;
  }

  private mediatorFailed(connection: FdSocket | ByteRelay, error: unknown): void {
    this.log.error('mediator failed on a connection', { error: (error as Error).message });
    connection.destroy();
  }

  private accept(mediator: Mediator, context: LinkContext, socket: FdSocket): void {
    if (!this.admit()) {
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    socket.once('close', () => this.connections.delete(socket));
    try {
      mediator.onConnection?.(socket, context, this.mediatorState);
    } catch (error) {
      this.mediatorFailed(socket, error);
    }
  }

  private acceptRelayed(mediator: Mediator, context: LinkContext, fd: number): void {
    if (!this.admit()) {
      closeFds([fd]);
      return;
    }
    // The common case needs no JavaScript per connection from here: dialled at once, held by the tally.
    const providerFd = mediator.dialsAsDaemon?.(this.mediatorState) ? context.dialProviderNow() : null;
    if (providerFd !== null) {
      this.relayInAddon(fd, providerFd);
      return;
    }
    const relay = new ByteRelay(fd, this.tallied(), this.limits.idleHalfOpenMs, (end) => {
      this.connections.delete(relay);
      this.relayEnded(end);
    });
    this.connections.add(relay);
    try {
      mediator.onRelayedConnection?.(relay, context, this.mediatorState);
    } catch (error) {
      this.mediatorFailed(relay, error);
    }
  }

  /** The tally of the link's relays in the addon, made with the first. */
  private tallied(): RelayTally {
    this.tally ??= new RelayTally((end) => this.relayEnded(end));
    return this.tally;
  }

  /** A connection relayed by the addon from now on, held by the link's tally (both fds now its). */
  private relayInAddon(consumerFd: number, providerFd: number): void {
    this.tallied().relay(consumerFd, providerFd, this.limits.idleHalfOpenMs);
  }

  /** As mediators/relay.ts logs the end of a connection it relays. */
  private relayEnded({ kind, detail }: RelayEnd): void {
    if (kind === 'failed') this.log.debug('connection error', { error: detail });
    else if (kind === 'reaped') this.log.info('idle half-open connection reaped', { detail });
  }

  private async tearDown(mediator: Mediator, context: LinkContext): Promise<void> {
    const planted = this.planted;
    this.planted = null;
    if (planted) {
      planted.listener.close();
      for (const socket of this.connections) socket.destroy();
      this.tally?.endAll();
      await context.consumer.unlink(this.spec.target, planted.ino).catch((error: Error) => {
        // The consumer may be gone with its namespace; nothing of ours is left then.
        this.log.debug('unlink skipped', { target: this.spec.target, error: error.message });
      });
    }
    if (this.prepared) {
      this.prepared = false;
      await mediator.remove?.(context, this.mediatorState).catch((error: Error) => {
        this.log.warn('mediator cleanup failed', { error: error.message });
      });
    }
  }

  /** Counts a refusal by the access policy; logs each distinct one once, so a provider can write its policy. */
  private refused({ rule, what }: Refusal): void {
    this.ownCounters.denied += 1;
    const key = `${rule}\n${what}`;
    this.refusalsLogged ??= new Set();
    const logged = this.refusalsLogged;
    if (logged.has(key) || logged.size >= MAX_LOGGED_REFUSALS) return;
    logged.add(key);
    this.log.info('access denied', { role: this.spec.role, rule, what });
    if (logged.size === MAX_LOGGED_REFUSALS) {
      this.log.info('access denied: further distinct refusals of this link are counted, not logged');
    }
  }

  private scheduleRetry(): void {
    const delay = Math.min(this.limits.retryBaseMs * 2 ** this.attempts, this.limits.retryMaxMs);
    this.attempts += 1;
    this.log.warn('link failed', { error: this.error, retryInMs: delay });
    this.retryTimer = setTimeout(() => void this.start(), delay);
    this.retryTimer.unref();
  }

  private setState(state: LinkState, error: string | null): void {
    if (state !== this.state) this.since = Date.now();
    if (state !== 'active') this.note = null;
    this.state = state;
    this.error = error;
  }

  private createContext(consumer: Namespace, provider: Namespace): OwnContext {
    const { spec } = this;
    return {
      spec,
      narrowings: null,
      log: this.log,
      counters: this.ownCounters,
      consumer,
      provider,
      relayLimits: { idleHalfOpenMs: this.limits.idleHalfOpenMs, messageStallMs: this.limits.messageStallMs },
      dialProvider: (credentials) => provider.connect(spec.socket, credentials),
      dialProviderNow: () => provider.connectNow(spec.socket),
      relayInAddon: (consumerFd, providerFd) => this.relayInAddon(consumerFd, providerFd),
      note: (text) => {
        this.note = text;
      },
      refused: (refusal) => this.refused(refusal),
    };
  }
}
