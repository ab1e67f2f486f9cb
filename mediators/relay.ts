// The relay every socket mediator shares, and the owner of each relayed connection's life: pumps {data, fds} chunks
// between a consumer and its provider socket with backpressure and half-close, reaps idle half-open connections,
// closes a connection whose sender stops in the middle of a message, and tells the filters when the connection is
// over. A direction may have a filter that rewrites or frames the stream (the protocol knowledge lives in the
// mediator and protocols/, never here).

import type { Logger } from '../log/logger.js';
import type { Chunk, FdSocket } from '../native/fd-socket.js';
import { closeFds } from '../native/fds.js';
import type { LinkCounters, RelayLimits, Traffic } from './types.js';

export type Direction = keyof Traffic;

/** Where a filter sends its output: onward, or back to the side the input came from. */
export interface FilterSink {
  /** Sends bytes (and the fds that ride with their first byte) onward. Ownership of the fds passes on. */
  forward(data: Buffer, fds?: number[]): void;
  /** Answers the sender directly (a protocol error reply, a handshake line the far side must not see). */
  reply(data: Buffer): void;
}

/**
 * Transforms one direction. `push` owns the chunk's fds: it forwards them, keeps them or closes them. Throwing a
 * `RelayRejection` (or anything) ends the connection with that reason after any reply was flushed.
 */
export interface StreamFilter {
  push(chunk: Chunk, sink: FilterSink): void;
  /** The sender half-closed; flush what is held back. */
  end?(sink: FilterSink): void;
  /**
   * Asked after `end`: true keeps the receiver's side open, because the filter still holds input that must go on
   * first; it calls `Relay.halfClose` once that went on.
   */
  endsLater?(): boolean;
  /** The connection is over, however it ended: release what is still held (fds above all). Called once. */
  dispose?(): void;
  /**
   * While the sender has begun a message (a line, a frame, a head) and not finished it: a number that differs
   * from one message to the next (how many went before it will do); undefined between messages. The relay closes
   * the connection when the same message stays unfinished for `RelayLimits.messageStallMs` while it is read.
   */
  partialMessage?(): number | undefined;
}

export class RelayRejection extends Error {
  override name = 'RelayRejection';
}

/** A filter for each direction, from a mediator whose protocol state spans both. */
export interface FilterPair {
  toProvider: StreamFilter;
  toConsumer: StreamFilter;
}

export interface RelayOptions extends Partial<FilterPair> {
  counters: LinkCounters;
  limits: RelayLimits;
  log: Logger;
}

/** A running relay of one connection, for filters whose decisions span both directions. */
export interface Relay {
  /** Tears the connection down at once. */
  finish(): void;
  /** Where output of `direction` goes, the same sink its filter gets (for a filter that decides for both). */
  sink(direction: Direction): FilterSink;
  /**
   * Stops (true) or restarts (false) reading from the sender of `direction`, whatever the backpressure: a filter
   * that must hold input until the other direction decides what it is keeps what it holds bounded this way.
   */
  hold(direction: Direction, held: boolean): void;
  /** Ends the connection as a throw from the filter of `direction` would: what was replied still reaches the sender. */
  reject(direction: Direction, reason: Error): void;
  /** Ends the connection as `reject` does, as an ordinary close the protocol asked for (not logged as a rejection). */
  close(direction: Direction): void;
  /** Ends the stream onward, as its sender's own end did (for a filter that `endsLater`). */
  halfClose(direction: Direction): void;
  /**
   * Passes the next `length` bytes from the sender of `direction` on as they are, inside the kernel, without
   * the filter (a body it need not see); fds that come with them are closed. `done(moved)` runs once they went
   * on, with fewer if the sender's stream ended first (its end follows); not at all if the connection ends first.
   */
  transfer(direction: Direction, length: number, done: (moved: number) => void): void;
  /**
   * Ends the relay here and gives both sockets' fds, open, to `take` (to be relayed without filters from now on),
   * if nothing of the connection is on its way inside the relay: both sides still open both ways, nothing queued
   * to write, no transfer running. The filters are disposed of as at any end. False (and nothing changes) when
   * the connection is not in that state.
   */
  handOff(take: (consumerFd: number, providerFd: number) => void): boolean;
}

/** The relay's limits unless the daemon is told otherwise (docs/daemon.md, "Limits"). */
export const DEFAULT_RELAY_LIMITS: RelayLimits = { idleHalfOpenMs: 60_000, messageStallMs: 10_000 };

/** How long a side gets to read what was queued for it (a reply to a rejected sender, the last words of a peer
 * that went away) once the connection is over, before its socket is closed. */
const LINGER_MS = 1000;

/** One direction of the connection. */
interface Flow {
  readonly direction: Direction;
  readonly from: FdSocket;
  readonly to: FdSocket;
  readonly filter: StreamFilter | undefined;
  readonly sink: FilterSink;
  /** A filter stopped reading the sender. */
  held: boolean;
  /** The receiver's queue is full: the sender waits for its 'drain'. */
  congested: boolean;
  /** The unfinished message the sender is in (see StreamFilter.partialMessage) and since when, while it is read. */
  stalledMessage: number | undefined;
  stalledSince: number;
}

/**
 * Adds to one direction's count, naming it at each site: `traffic[direction]` would be a keyed access whose key
 * varies, which V8 serves through its megamorphic cache (per chunk, both ways).
 */
function count(traffic: Traffic, direction: Direction, amount: number): void {
  if (direction === 'toProvider') traffic.toProvider += amount;
  else traffic.toConsumer += amount;
}

/** Relays until both sides are closed. */
export function relay(consumer: FdSocket, provider: FdSocket, options: RelayOptions): Relay {
  const { counters, limits, log } = options;
  let lastActivity = Date.now();
  let reaper: NodeJS.Timeout | undefined;
  let stallTimer: NodeJS.Timeout | undefined;
  let finished = false;
  let disposed = false;

  const flow = (from: FdSocket, to: FdSocket, direction: Direction, filter?: StreamFilter): Flow => ({
    direction,
    from,
    to,
    filter,
    sink: {
      forward(data, fds) {
        count(counters.bytes, direction, data.length);
        if (fds?.length) count(counters.fds, direction, fds.length);
        if (!to.write(data, fds)) setCongested(flows[direction], true);
      },
      reply(data) {
        from.write(data);
      },
    },
    held: false,
    congested: false,
    stalledMessage: undefined,
    stalledSince: 0,
  });
  const flows: Record<Direction, Flow> = {
    toProvider: flow(consumer, provider, 'toProvider', options.toProvider),
    toConsumer: flow(provider, consumer, 'toConsumer', options.toConsumer),
  };

  /** The filters are told once, as soon as nothing more can reach them. */
  const dispose = () => {
    if (disposed) return;
    disposed = true;
    clearTimeout(stallTimer);
    flows.toProvider.filter?.dispose?.();
    flows.toConsumer.filter?.dispose?.();
  };

  const finish = () => {
    if (finished) return;
    finished = true;
    clearInterval(reaper);
    consumer.destroy();
    provider.destroy();
    dispose();
  };

  // The connection is over but for `survivor`: it still gets what was queued for it, then the end of the stream,
  // and what it still sends is read and dropped until it closes (so it sees all of it, not a reset) or the linger
  // is over.
  const windDown = (survivor: FdSocket) => {
    finished = true;
    clearInterval(reaper);
    dispose();
    survivor.resume();
    survivor.end();
    const linger = setTimeout(() => survivor.destroy(), LINGER_MS);
    linger.unref();
    survivor.once('close', () => clearTimeout(linger));
  };

  // A filter refused the stream: nothing more goes onward and the sender gets its reply.
  const reject = (flow: Flow, error: unknown) => {
    log.warn('connection rejected', { direction: flow.direction, reason: (error as Error).message });
    stopOnward(flow);
  };

  // A filter refused the stream or its protocol ends the connection: nothing more goes onward, the sender gets what
  // was replied to it.
  const stopOnward = ({ from, to }: Flow) => {
    to.destroy();
    windDown(from);
  };

  const updateReading = (flow: Flow) => {
    if (flow.held || flow.congested) flow.from.pause();
    else if (!finished) flow.from.resume();
    watchStall(flow);
  };

  const setCongested = (flow: Flow, congested: boolean) => {
    if (flow.congested === congested) return;
    flow.congested = congested;
    updateReading(flow);
  };

  // The clock of an unfinished message runs only while its sender is read: waiting on our own backpressure or on
  // a filter's hold is not the sender's stall.
  const watchStall = (flow: Flow) => {
    const message = finished || flow.held || flow.congested ? undefined : flow.filter?.partialMessage?.();
    if (message === flow.stalledMessage) return;
    flow.stalledMessage = message;
    if (message === undefined) return;
    flow.stalledSince = Date.now();
    stallTimer ??= setTimeout(checkStalls, limits.messageStallMs).unref();
  };

  const checkStalls = () => {
    stallTimer = undefined;
    if (finished) return;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const flow of [flows.toProvider, flows.toConsumer]) {
      if (flow.stalledMessage === undefined) continue;
      const deadline = flow.stalledSince + limits.messageStallMs;
      if (deadline <= now) {
        log.warn('connection stalled mid-message', {
          direction: flow.direction,
          stalledMs: now - flow.stalledSince,
        });
        finish();
        return;
      }
      next = Math.min(next, deadline);
    }
    if (next !== Number.POSITIVE_INFINITY) stallTimer = setTimeout(checkStalls, next - now).unref();
  };

  const pump = (flow: Flow) => {
    const { from, to, filter, sink } = flow;
    to.on('drain', () => setCongested(flow, false));

    from.on('data', (chunk: Chunk) => {
      lastActivity = Date.now();
      if (finished || to.destroyed) {
        closeFds(chunk.fds);
        return;
      }
      try {
        if (filter) filter.push(chunk, sink);
        else sink.forward(chunk.data, chunk.fds);
      } catch (error) {
        if (!finished) reject(flow, error);
        return;
      }
      if (filter?.partialMessage) watchStall(flow);
    });

    from.on('end', () => {
      if (finished) return;
      try {
        filter?.end?.(sink);
        if (!filter?.endsLater?.()) to.end();
      } catch (error) {
        if (!finished) reject(flow, error);
        return;
      }
      armReaper();
    });
  };

  // Once one direction is closed, the connection is half-open: reap it if nothing moves for too long.
  const armReaper = () => {
    if (reaper || finished) return;
    const { idleHalfOpenMs } = limits;
    reaper = setInterval(
      () => {
        if (Date.now() - lastActivity >= idleHalfOpenMs) {
          log.info('idle half-open connection reaped', { idleMs: Date.now() - lastActivity });
          finish();
        }
      },
      Math.max(10, Math.floor(idleHalfOpenMs / 4)),
    );
    reaper.unref();
  };

  // A side that fails is gone, but what it sent before is not lost: the other side winds down.
  const onError = (side: string, other: FdSocket) => (error: Error) => {
    log.debug('connection error', { side, error: error.message });
    if (!finished) windDown(other);
  };
  consumer.on('error', onError('consumer', provider));
  provider.on('error', onError('provider', consumer));

  // A side that closes ends the connection: the other side is closed too (it has nothing left to talk to).
  let closed = 0;
  const onClose = () => {
    closed += 1;
    if (closed === 1 && !finished) {
      // One side closed cleanly after both directions ended: the other finishes on its own; else tear down.
      if (!(consumer.readableEnded && provider.readableEnded)) finish();
    }
    if (closed === 2) {
      clearInterval(reaper);
      dispose();
    }
  };
  consumer.on('close', onClose);
  provider.on('close', onClose);

  pump(flows.toProvider);
  pump(flows.toConsumer);
  return {
    finish,
    sink: (direction) => flows[direction].sink,
    hold(direction, held) {
      const flow = flows[direction];
      if (flow.held === held) return;
      flow.held = held;
      updateReading(flow);
    },
    reject(direction, reason) {
      if (!finished) reject(flows[direction], reason);
    },
    close(direction) {
      if (!finished) stopOnward(flows[direction]);
    },
    halfClose(direction) {
      if (!finished) flows[direction].to.end();
    },
    transfer(direction, length, done) {
      const { from, to } = flows[direction];
      if (finished || from.destroyed || to.destroyed) return;
      const moved = (bytes: number) => {
        count(counters.bytes, direction, bytes);
        lastActivity = Date.now();
      };
      from.transferTo(to, length, moved, done);
    },
    handOff(take) {
      if (finished || !consumer.detachable || !provider.detachable) return false;
      finished = true;
      clearInterval(reaper);
      dispose();
      take(consumer.detach(), provider.detach());
      log.debug('connection handed off');
      return true;
    },
  };
}
