// The relay's ownership of a connection's life, on socket pairs with a line-framing filter: filters are disposed of
// exactly once however the connection ends, and a sender that stops inside a message is cut off after the limit
// (on a fake clock, so the limit's edges are exact) while idle senders, senders waiting on our backpressure or on a
// filter's hold, and senders that finish each message in time are not.
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Fields } from '../../log/logger.js';
import {
  type FilterSink,
  type Relay,
  RelayRejection,
  relay,
  type StreamFilter,
} from '../../mediators/relay.js';
import type { LinkCounters } from '../../mediators/types.js';
import { type Chunk, FdSocket } from '../../native/fd-socket.js';
import { fdio } from '../../native/fdio.js';
import { closeFd, closeFds } from '../../native/fds.js';
import { fileWithContent, recordingLogger } from '../../testkit/mesh.js';
import { socketPair, socketPairFds } from '../../testkit/sockets.js';

const STALL_MS = 1000;

/** Forwards whole lines; holds a partial one (and any fds) until its newline comes. "reject\n" is refused. */
class LineFilter implements StreamFilter {
  held = '';
  lines = 0;
  fds: number[] = [];
  disposals = 0;
  #pushed: (() => void)[] = [];

  push({ data, fds }: Chunk, sink: FilterSink): void {
    this.fds.push(...fds);
    this.held += data.toString('latin1');
    const end = this.held.lastIndexOf('\n');
    if (end >= 0) {
      const complete = this.held.slice(0, end + 1);
      this.held = this.held.slice(end + 1);
      this.lines += complete.split('\n').length - 1;
      if (complete.includes('reject\n')) throw new RelayRejection('refused');
      sink.forward(Buffer.from(complete, 'latin1'));
    }
    for (const waiter of this.#pushed.splice(0)) waiter();
  }

  dispose(): void {
    this.disposals += 1;
    closeFds(this.fds);
    this.fds = [];
  }

  partialMessage(): number | undefined {
    return this.held === '' ? undefined : this.lines;
  }

  /** Resolves after the next push. */
  pushed(): Promise<void> {
    return new Promise((resolve) => this.#pushed.push(resolve));
  }
}

interface Relayed {
  client: FdSocket;
  server: FdSocket;
  consumer: FdSocket;
  provider: FdSocket;
  filter: LinkFilters;
  relay: Relay;
  log: Fields[];
}

interface LinkFilters {
  toProvider: LineFilter;
  toConsumer: LineFilter;
}

let open: Relayed[] = [];

function zeroCounters(): LinkCounters {
  return {
    connections: { active: 0, total: 0, rejected: 0, failed: 0 },
    bytes: { toProvider: 0, toConsumer: 0 },
    fds: { toProvider: 0, toConsumer: 0 },
    denied: 0,
  };
}

function relayed(options: { highWaterMark?: number } = {}): Relayed {
  const [client, consumer] = socketPair(options);
  const [provider, server] = socketPair(options);
  const log: Fields[] = [];
  const counters = zeroCounters();
  const filter = { toProvider: new LineFilter(), toConsumer: new LineFilter() };
  const running = relay(consumer, provider, {
    counters,
    limits: { idleHalfOpenMs: 60_000, messageStallMs: STALL_MS },
    log: recordingLogger(log),
    ...filter,
  });
  for (const socket of [client, server]) socket.on('error', () => {});
  const result = { client, server, consumer, provider, filter, relay: running, log };
  open.push(result);
  return result;
}

const closed = (socket: FdSocket) =>
  socket.destroyed
    ? Promise.resolve()
    : new Promise<void>((resolve) => socket.once('close', () => resolve()));

/** Lets destroy()'s close events (next tick) and the sockets' I/O happen. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/** On the fake clock: still open one ms before the stall limit has passed since now, closed once it has. */
async function expectCutOffAtTheLimit(consumer: FdSocket): Promise<void> {
  vi.advanceTimersByTime(STALL_MS - 1);
  await settle();
  expect(consumer.destroyed).toBe(false);
  vi.advanceTimersByTime(1);
  await settle();
  expect(consumer.destroyed).toBe(true);
}

afterEach(() => {
  for (const { client, server, consumer, provider } of open)
    for (const socket of [client, server, consumer, provider]) socket.destroy();
  open = [];
});

describe('disposal', () => {
  it('disposes of both filters once when both sides close cleanly', async () => {
    const { client, server, filter } = relayed();
    client.end();
    server.on('end', () => server.end());
    server.resume();
    client.resume();
    await closed(client);
    await settle();
    expect([filter.toProvider.disposals, filter.toConsumer.disposals]).toEqual([1, 1]);
  });

  it('disposes of both filters once on a rejection, closing the fds a filter held', async () => {
    const { client, consumer, filter, log } = relayed();
    const fd = fileWithContent('held');
    client.write(Buffer.from('partial'), [fd]);
    await filter.toProvider.pushed();
    expect(filter.toProvider.fds).toHaveLength(1);
    client.write(Buffer.from('\nreject\n'));
    await closed(consumer);
    await settle();
    expect([filter.toProvider.disposals, filter.toConsumer.disposals]).toEqual([1, 1]);
    expect(filter.toProvider.fds).toEqual([]);
    expect(log.filter((line) => line.event === 'connection rejected')).toHaveLength(1);
  });

  it('disposes of both filters once when the relay is finished', async () => {
    const { relay, consumer, provider, filter } = relayed();
    relay.finish();
    relay.finish();
    await Promise.all([closed(consumer), closed(provider)]);
    await settle();
    expect([filter.toProvider.disposals, filter.toConsumer.disposals]).toEqual([1, 1]);
  });
});

describe('handing off', () => {
  it('gives both fds, open, to be relayed on; the filters are disposed of, the sockets close without a reset', async () => {
    const { client, server, consumer, provider, filter, relay: running } = relayed();
    client.write(Buffer.from('through the filter\n'));
    const [first] = (await once(server, 'data')) as [Chunk];
    expect(first.data.toString()).toBe('through the filter\n');
    let taken: [number, number] | null = null;
    expect(running.handOff((consumerFd, providerFd) => (taken = [consumerFd, providerFd]))).toBe(true);
    expect(taken).toEqual([consumer.fd, provider.fd]);
    await Promise.all([closed(consumer), closed(provider)]);
    expect([filter.toProvider.disposals, filter.toConsumer.disposals]).toEqual([1, 1]);
    // The fds are still open, each still its end of the connection (no newline needed: no filter any more).
    const [consumerFd, providerFd] = taken as unknown as [number, number];
    fdio.send(consumerFd, [Buffer.from('to the client')], 0, null);
    const [toClient] = (await once(client, 'data')) as [Chunk];
    expect(toClient.data.toString()).toBe('to the client');
    fdio.send(providerFd, [Buffer.from('to the server')], 0, null);
    const [toServer] = (await once(server, 'data')) as [Chunk];
    expect(toServer.data.toString()).toBe('to the server');
    expect(running.handOff(() => expect.unreachable())).toBe(false);
    closeFds([consumerFd, providerFd]);
  });

  it('is refused while bytes are queued to write or after the connection ended', async () => {
    // More than the sockets hold: the rest waits in the relay's queue for the server.
    const queued = relayed();
    queued.client.write(Buffer.from(`${'a'.repeat(4 << 20)}\n`));
    while (queued.provider.writableLength === 0) await settle();
    expect(queued.relay.handOff(() => expect.unreachable())).toBe(false);
    const finished = relayed();
    finished.relay.finish();
    expect(finished.relay.handOff(() => expect.unreachable())).toBe(false);
    const halfClosed = relayed();
    halfClosed.client.end();
    halfClosed.server.resume();
    await once(halfClosed.server, 'end');
    expect(halfClosed.relay.handOff(() => expect.unreachable())).toBe(false);
  });
});

describe('a sender stalled mid-message', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is cut off once its message has been unfinished for the limit, not a moment before', async () => {
    const { client, consumer, provider, filter, log } = relayed();
    client.write(Buffer.from('half a li'));
    await filter.toProvider.pushed();
    await expectCutOffAtTheLimit(consumer);
    expect(provider.destroyed).toBe(true);
    expect(log.find((line) => line.event === 'connection stalled mid-message')).toMatchObject({
      level: 'warn',
      direction: 'toProvider',
      stalledMs: STALL_MS,
    });
    expect(filter.toProvider.disposals).toBe(1);
  });

  it('is cut off however slowly the same message keeps trickling in', async () => {
    const { client, consumer, filter } = relayed();
    for (const byte of 'a line that never ends') {
      client.write(Buffer.from(byte));
      await filter.toProvider.pushed();
      vi.advanceTimersByTime(STALL_MS / 10);
      await settle();
      if (consumer.destroyed) break;
    }
    expect(consumer.destroyed).toBe(true);
  });

  it('is not cut off between messages, nor while each message ends in time', async () => {
    const { client, server, consumer, filter } = relayed();
    server.resume();
    vi.advanceTimersByTime(10 * STALL_MS);
    for (let i = 0; i < 5; i++) {
      // Every chunk ends inside the next message: the clock restarts with each message.
      client.write(Buffer.from(`${i === 0 ? '' : 'end\n'}start of ${i}`));
      await filter.toProvider.pushed();
      vi.advanceTimersByTime(STALL_MS - 1);
      await settle();
      expect(consumer.destroyed).toBe(false);
    }
    expect(consumer.destroyed).toBe(false);
    expect(filter.toProvider.lines).toBe(4);
  });

  it('is not cut off while a filter holds it, and gets the whole limit once released', async () => {
    const { client, consumer, filter, relay } = relayed();
    client.write(Buffer.from('half'));
    await filter.toProvider.pushed();
    relay.hold('toProvider', true);
    vi.advanceTimersByTime(5 * STALL_MS);
    await settle();
    expect(consumer.destroyed).toBe(false);
    relay.hold('toProvider', false);
    await expectCutOffAtTheLimit(consumer);
  });

  it('is not cut off while it waits for the receiver to read what went before', async () => {
    const { client, server, consumer, provider, filter } = relayed({ highWaterMark: 1024 });
    // The server does not read: the relay's queue to it fills past its mark and the client is no longer read.
    server.pause();
    client.write(Buffer.from(`${'x'.repeat(1 << 20)}\nthen half`));
    while (provider.writableLength < 1024 || filter.toProvider.held === '') await filter.toProvider.pushed();
    vi.advanceTimersByTime(5 * STALL_MS);
    await settle();
    expect(consumer.destroyed).toBe(false);
    // Once the server reads, the half message is the client's again: the whole limit, then it is cut off.
    server.resume();
    while (provider.writableLength > 0) await settle();
    await expectCutOffAtTheLimit(consumer);
  });
});

describe('a side that goes away', () => {
  it('loses nothing it sent: what it wrote before closing reaches the other side, then the end', async () => {
    const [client, consumer] = socketPair();
    const [provider, serverFd] = socketPairFds();
    const providerSocket = new FdSocket(provider);
    const counters = zeroCounters();
    relay(consumer, providerSocket, {
      counters,
      limits: { idleHalfOpenMs: 60_000, messageStallMs: STALL_MS },
      log: recordingLogger([]),
    });
    const received: Buffer[] = [];
    client.on('data', ({ data }: Chunk) => received.push(data));
    client.on('error', () => {}); // what it still sends after the end is not read for long
    const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
    // More than the sockets hold: the relay keeps some queued for the server, waiting until it can write again.
    client.write(Buffer.alloc(4 << 20, 0x61));
    while (providerSocket.writableLength === 0) await settle();
    // The server reads what reached it (its close is then clean, not a reset), answers and closes, all at once:
    // the relay sees the answer together with its next write to the server failing (EPIPE).
    while (fdio.recv(serverFd, 1 << 20) !== null);
    fdio.send(serverFd, [Buffer.from('last words')], 0, null);
    closeFd(serverFd);
    await ended;
    expect(Buffer.concat(received).toString()).toBe('last words');
    await closed(providerSocket);
    client.destroy();
    await closed(consumer);
  });
});
