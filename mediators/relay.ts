// The relay every socket mediator shares: pumps {data, fds} chunks between a consumer and a provider socket with
// backpressure, half-close and reaping of idle half-open sessions. A direction may have a filter that rewrites
// or frames the stream (the protocol knowledge lives in the mediator and protocols/, never here).
import type { Chunk, FdSocket } from '../native/fd-socket.js';
import { closeFds } from '../native/fds.js';
import type { LinkCounters, Logger, RelayLimits, Traffic } from './types.js';

/** Where a filter sends its output: onward, or back to the side the input came from. */
export interface FilterSink {
  /** Sends bytes (and the fds that ride with their first byte) onward. Ownership of the fds passes on. */
  forward(data: Buffer, fds?: number[]): void;
  /** Answers the sender directly (a protocol error reply, a handshake line the far side must not see). */
  reply(data: Buffer): void;
}

/**
 * Transforms one direction. `push` owns the chunk's fds: it forwards them or closes them. Throwing a
 * `RelayRejection` (or anything) ends the session with that reason after any reply was flushed.
 */
export interface StreamFilter {
  push(chunk: Chunk, sink: FilterSink): void;
  /** The sender half-closed; flush what is held back. */
  end?(sink: FilterSink): void;
}

export class RelayRejection extends Error {
  override name = 'RelayRejection';
}

export interface RelayOptions {
  counters: LinkCounters;
  limits: RelayLimits;
  log: Logger;
  toProvider?: StreamFilter;
  toConsumer?: StreamFilter;
}

export type Direction = keyof Traffic;

/** A running session, for filters whose decisions span both directions (the other direction decides). */
export interface RelaySession {
  /** Tears the session down at once. */
  finish(): void;
  /**
   * Stops (true) or restarts (false) reading from the sender of `direction`, whatever the backpressure: a filter
   * that must hold input until the other direction decides what it is keeps what it holds bounded this way.
   */
  hold(direction: Direction, held: boolean): void;
  /** Ends the session as a throw from the filter of `direction` would: what was replied still reaches the sender. */
  reject(direction: Direction, reason: Error): void;
  /**
   * Passes the next `length` bytes from the sender of `direction` on as they are, inside the kernel, without
   * the filter (a body it need not see); fds that come with them are closed. `done(moved)` runs once they went
   * on, with fewer if the sender's stream ended first (its end follows); not at all if the session ends first.
   */
  transfer(direction: Direction, length: number, done: (moved: number) => void): void;
}

/** How long a rejected sender gets to read our reply before its socket is closed. */
const REPLY_LINGER_MS = 1000;

/** Relays until both sides are closed. */
export function relay(consumer: FdSocket, provider: FdSocket, options: RelayOptions): RelaySession {
  let lastActivity = Date.now();
  let reaper: NodeJS.Timeout | undefined;
  let finished = false;
  const held: Record<Direction, boolean> = { toProvider: false, toConsumer: false };
  const senders: Record<Direction, FdSocket> = { toProvider: consumer, toConsumer: provider };
  const receivers: Record<Direction, FdSocket> = { toProvider: provider, toConsumer: consumer };

  const finish = () => {
    if (finished) return;
    finished = true;
    clearInterval(reaper);
    consumer.destroy();
    provider.destroy();
  };

  const pump = (from: FdSocket, to: FdSocket, direction: Direction, filter: StreamFilter | undefined) => {
    const sink: FilterSink = {
      forward(data, fds) {
        options.counters.bytes[direction] += data.length;
        if (fds?.length) options.counters.fds[direction] += fds.length;
        if (!to.write(data, fds)) from.pause();
      },
      reply(data) {
        from.write(data);
      },
    };
    to.on('drain', () => {
      if (!held[direction]) from.resume();
    });

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
        reject(from, to, direction, error);
      }
    });

    from.on('end', () => {
      try {
        filter?.end?.(sink);
        to.end();
      } catch (error) {
        reject(from, to, direction, error);
        return;
      }
      armReaper();
    });
  };

  // A filter refused the stream: nothing more goes onward, the sender gets its reply and then loses its socket.
  const reject = (from: FdSocket, to: FdSocket, direction: Direction, error: unknown) => {
    options.log.warn('connection rejected', { direction, reason: (error as Error).message });
    finished = true;
    clearInterval(reaper);
    to.destroy();
    from.pause();
    from.end();
    const linger = setTimeout(() => from.destroy(), REPLY_LINGER_MS);
    linger.unref();
    from.once('close', () => clearTimeout(linger));
  };

  // Once one direction is closed, the session is half-open: reap it if nothing moves for too long.
  const armReaper = () => {
    if (reaper || finished) return;
    const { idleHalfOpenMs } = options.limits;
    reaper = setInterval(
      () => {
        if (Date.now() - lastActivity >= idleHalfOpenMs) {
          options.log.info('idle half-open connection reaped', { idleMs: Date.now() - lastActivity });
          finish();
        }
      },
      Math.max(10, Math.floor(idleHalfOpenMs / 4)),
    );
    reaper.unref();
  };

  const onError = (side: string) => (error: Error) => {
    options.log.debug('connection error', { side, error: error.message });
    finish();
  };
  consumer.on('error', onError('consumer'));
  provider.on('error', onError('provider'));

  // A side that closes ends the session: the other side is closed too (it has nothing left to talk to).
  let closed = 0;
  const onClose = () => {
    closed += 1;
    if (closed === 1 && !finished) {
      // One side closed cleanly after both directions ended: the other finishes on its own; else tear down.
      if (!(consumer.readableEnded && provider.readableEnded)) finish();
    }
    if (closed === 2) clearInterval(reaper);
  };
  consumer.on('close', onClose);
  provider.on('close', onClose);

  pump(consumer, provider, 'toProvider', options.toProvider);
  pump(provider, consumer, 'toConsumer', options.toConsumer);
  return {
    finish,
    hold(direction, value) {
      held[direction] = value;
      const sender = senders[direction];
      // A congested receiver pauses the sender again on the next forward.
      if (value) sender.pause();
      else if (!finished) sender.resume();
    },
    reject(direction, reason) {
      if (!finished) reject(senders[direction], receivers[direction], direction, reason);
    },
    transfer(direction, length, done) {
      const from = senders[direction];
      const to = receivers[direction];
      if (finished || from.destroyed || to.destroyed) return;
      const moved = (bytes: number) => {
        options.counters.bytes[direction] += bytes;
        lastActivity = Date.now();
      };
      from.transferTo(to, length, moved, done);
    },
  };
}
