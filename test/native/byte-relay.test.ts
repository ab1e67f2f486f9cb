// The addon's byte relay (native/byte-relay.ts, native/src/relay.c), between real socket pairs: bytes and fds both
// ways and in order, backpressure without loss, half-close, a side that fails (the survivor gets what was on its
// way, then the end), the wind-down's and the half-open reaper's bounds, destroy at any point, bad input, and the
// tally. Every test checks that the process holds as many fds afterwards as before.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { binding } from '../../native/binding.js';
import { ByteRelay, type RelayEnd, RelayTally } from '../../native/byte-relay.js';
import { FdSocket } from '../../native/fd-socket.js';
import { fdio } from '../../native/fdio.js';
import { closeFd } from '../../native/fds.js';
import { lowerFdLimit } from '../../testkit/fd-limit.js';
import {
  contentOf,
  eventually,
  fileWithContent,
  fileWithContentFds,
  loopTurns,
  openFdCount,
  readBytes,
  readToEnd,
  settled,
} from '../../testkit/mesh.js';
import { socketPairFds } from '../../testkit/sockets.js';
import { CI_SEED } from '../fuzz/target.js';
import { prng } from '../protocols/http/streams.js';

// The environment's relay engine (one epoll fd, kept for the process's life) comes with its first relay.
beforeAll(() => {
  const [consumerFd, providerFd] = socketPairFds();
  new ByteRelay(consumerFd, new RelayTally(), 1000, () => {}).start(providerFd);
});

let fdsBefore = 0;
beforeEach(() => {
  fdsBefore = openFdCount();
});

async function expectNoFdLeak(): Promise<void> {
  await eventually(() => openFdCount() === fdsBefore, undefined, `fd count back at ${fdsBefore}`);
}

/** client ⇄ [consumer fd | relay | provider fd] ⇄ server, as a unix link wires them. */
interface Wired {
  /** The consumer's application end. */
  client: FdSocket;
  /** The provider's application end, as a plain fd (for a test that must control exactly what reaches the kernel). */
  serverFd: number;
  tally: RelayTally;
  ends: RelayEnd[];
  counts(): {
    bytes: { toProvider: number; toConsumer: number };
    fds: { toProvider: number; toConsumer: number };
  };
}

interface RawRelayed extends Wired {
  relay: ByteRelay;
}

interface WithServer {
  /** The provider's application end. */
  server: FdSocket;
}

type Relayed = RawRelayed & WithServer;

/** Wires the ends; `start` hands the consumer's and the provider's fd to a relay. */
function wire(
  tally: RelayTally,
  ends: RelayEnd[],
  start: (consumerFd: number, providerFd: number) => void,
): Wired {
  const [clientFd, consumerFd] = socketPairFds();
  const [providerFd, serverFd] = socketPairFds();
  start(consumerFd, providerFd);
  const client = new FdSocket(clientFd);
  client.on('error', () => {});
  // As a link's: readInto adds what moved since its last call.
  const counters = { bytes: { toProvider: 0, toConsumer: 0 }, fds: { toProvider: 0, toConsumer: 0 } };
  return {
    client,
    serverFd,
    tally,
    ends,
    counts() {
      tally.readInto(counters);
      return structuredClone(counters);
    },
  };
}

/** A relay with a JS handle (ByteRelay); `ends` gets its end, however it ended. */
function relayedRaw(idleHalfOpenMs = 60_000, tally = new RelayTally()): RawRelayed {
  const ends: RelayEnd[] = [];
  let relay: ByteRelay | undefined;
  const wired = wire(tally, ends, (consumerFd, providerFd) => {
    relay = new ByteRelay(consumerFd, tally, idleHalfOpenMs, (end) => ends.push(end));
    relay.start(providerFd);
  });
  return { ...wired, relay: relay as ByteRelay };
}

function withServer<T extends Wired>(wired: T): T & WithServer {
  const server = new FdSocket(wired.serverFd);
  server.on('error', () => {});
  return { ...wired, server };
}

/** The same, with the server's end an FdSocket too. */
function relayed(idleHalfOpenMs = 60_000, tally = new RelayTally()): Relayed {
  return withServer(relayedRaw(idleHalfOpenMs, tally));
}

/** A relay its tally holds (no JS handle): `ends` hears only of one that failed or was reaped. */
function heldRelayed(idleHalfOpenMs = 60_000): Wired & WithServer {
  const ends: RelayEnd[] = [];
  const tally = new RelayTally((end) => ends.push(end));
  return withServer(
    wire(tally, ends, (consumerFd, providerFd) => tally.relay(consumerFd, providerFd, idleHalfOpenMs)),
  );
}

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function pattern(length: number, seed: number): Buffer {
  const data = Buffer.alloc(length);
  for (let i = 0; i < length; i++) data[i] = (i * 31 + seed) & 0xff;
  return data;
}

describe('the addon byte relay', () => {
  it('relays bytes and fds both ways, in order, and counts them in the tally', async () => {
    const r = relayed();
    const file = fileWithContent('to the provider');
    r.client.write(Buffer.from('hello'), [file]);
    const atServer = await readBytes(r.server, 5);
    expect(atServer.data.toString()).toBe('hello');
    expect(atServer.fds).toHaveLength(1);
    expect(contentOf(atServer.fds[0] as number)).toBe('to the provider');

    const back = fileWithContent('to the consumer');
    r.server.write(Buffer.from('a'), [back]);
    r.server.write(Buffer.from('b'));
    const atClient = await readBytes(r.client, 2);
    expect(atClient.data.toString()).toBe('ab');
    expect(atClient.fds.map(contentOf)).toEqual(['to the consumer']);
    expect(r.counts()).toEqual({
      bytes: { toProvider: 5, toConsumer: 2 },
      fds: { toProvider: 1, toConsumer: 1 },
    });

    for (const fd of [...atServer.fds, ...atClient.fds]) closeFd(fd); // `file` and `back` went with their writes
    r.client.destroy();
    r.server.destroy();
    await eventually(() => r.ends.length === 1, undefined, 'the relay to end');
    expect(r.ends).toEqual([{ kind: 'closed', detail: null }]);
    await expectNoFdLeak();
  });

  it('holds a fast sender back while the receiver does not read, and loses nothing (8 MiB, fds on the way)', async () => {
    const r = relayed();
    const size = 8 << 20;
    const data = pattern(size, 7);
    const file = fileWithContent('mid-stream');
    r.server.pause();
    r.client.write(data.subarray(0, size / 2));
    r.client.write(data.subarray(size / 2, size / 2 + 1), [file]);
    r.client.write(data.subarray(size / 2 + 1));
    r.client.end();
    // Held back: far less than 8 MiB went through while the provider's end was not read.
    const heldAt = await settled(() => r.counts().bytes.toProvider, 'bytes relayed to a paused provider');
    expect(heldAt).toBeLessThan(size);
    const received = readToEnd(r.server);
    r.server.resume();
    const { data: got, fds } = await received;
    expect(got.length).toBe(size);
    expect(sha(got)).toBe(sha(data));
    expect(fds.map(contentOf)).toEqual(['mid-stream']);
    expect(r.counts().bytes.toProvider).toBe(size);
    for (const fd of fds) closeFd(fd);
    r.server.end();
    await eventually(() => r.ends.length === 1, undefined, 'the relay to end');
    expect(r.ends[0]?.kind).toBe('closed');
    r.client.destroy();
    r.server.destroy();
    await expectNoFdLeak();
  });

  it('passes a half-close on and still delivers the answer that follows it', async () => {
    const r = relayed();
    const request = readToEnd(r.server);
    r.client.write(Buffer.from('question'));
    r.client.end();
    expect((await request).data.toString()).toBe('question');
    const answer = readToEnd(r.client);
    const big = pattern(1 << 20, 3);
    r.server.write(big);
    r.server.end();
    const got = await answer;
    expect(sha(got.data)).toBe(sha(big));
    await eventually(() => r.ends.length === 1, undefined, 'the relay to end');
    expect(r.ends).toEqual([{ kind: 'closed', detail: null }]);
    r.client.destroy();
    r.server.destroy();
    await expectNoFdLeak();
  });

  it('gives the consumer what the provider sent before it failed, then the end, and names the failed side', async () => {
    const r = relayedRaw();
    fdio.send(r.serverFd, [Buffer.from('last words')], 0, null);
    const got = readToEnd(r.client);
    // The provider goes away with bytes it never read: the relay's next read of it says ECONNRESET.
    r.client.write(Buffer.from('unread'));
    await eventually(() => r.counts().bytes.toProvider === 6, undefined, 'the bytes to reach the provider');
    fdio.close(r.serverFd);
    expect((await got).data.toString()).toBe('last words');
    await eventually(() => r.ends.length === 1, undefined, 'the relay to end');
    expect(r.ends[0]?.kind).toBe('failed');
    expect(r.ends[0]?.detail).toMatch(/^provider recvmsg: ECONNRESET/);
    r.client.destroy();
    await expectNoFdLeak();
  });

  it('fails a side whose fds the kernel could not all install (MSG_CTRUNC), closing the ones that came', async () => {
    const [clientFd, consumerFd] = socketPairFds();
    const [providerFd, serverFd] = socketPairFds();
    const files = [fileWithContent('1'), fileWithContent('2'), fileWithContent('3')];
    fdio.send(clientFd, [Buffer.from('fds')], 0, files);
    for (const fd of files) closeFd(fd); // the socket holds its own copies
    const ends: RelayEnd[] = [];
    const relay = new ByteRelay(consumerFd, new RelayTally(), 60_000, (end) => ends.push(end));
    // The relay reads the consumer as it starts: with room for one fd left, the kernel installs one of three.
    const limit = lowerFdLimit();
    try {
      limit.fill(1);
      relay.start(providerFd);
    } finally {
      limit.restore();
    }
    const server = new FdSocket(serverFd);
    expect((await readToEnd(server)).data.length).toBe(0); // nothing went on, then the end
    server.destroy();
    await eventually(() => ends.length === 1, undefined, 'the relay to end');
    expect(ends[0]?.kind).toBe('failed');
    expect(ends[0]?.detail).toMatch(/^consumer recvmsg: control data truncated \(MSG_CTRUNC\)/);
    expect(fileWithContentFds()).toBe(0);
    fdio.close(clientFd);
    await expectNoFdLeak();
  });

  it('ends a wind-down whose survivor never closes after its linger', async () => {
    const r = relayedRaw();
    r.client.write(Buffer.from('x'));
    await eventually(() => r.counts().bytes.toProvider === 1, undefined, 'the byte to reach the provider');
    fdio.close(r.serverFd); // with the byte unread: a reset
    const clientEnded = readToEnd(r.client);
    // The client keeps talking (dropped) and never closes; the relay gives up on it after its linger.
    const chatter = setInterval(() => r.client.write(Buffer.from('more')), 20);
    await eventually(() => r.ends.length === 1, undefined, 'the wind-down to end');
    clearInterval(chatter);
    expect(r.ends[0]?.kind).toBe('failed');
    expect((await clientEnded).data.length).toBe(0);
    r.client.destroy();
    await expectNoFdLeak();
  });

  it('reaps a half-open connection once nothing moved for idleHalfOpenMs, and not while bytes move', async () => {
    const r = relayed(1000);
    const serverEnded = readToEnd(r.server);
    r.client.end();
    await serverEnded;
    // Bytes that keep moving keep it alive: 5 answers, 250 ms apart (longer in all than idleHalfOpenMs).
    const answers = readBytes(r.client, 5);
    for (let i = 0; i < 5; i++) {
      r.server.write(Buffer.from('.'));
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect((await answers).data.toString()).toBe('.....');
    expect(r.ends).toEqual([]);
    await eventually(() => r.ends.length === 1, undefined, 'the reaper');
    expect(r.ends[0]?.kind).toBe('reaped');
    expect(r.ends[0]?.detail).toMatch(/^half-open and idle for \d+ ms$/);
    r.client.destroy();
    r.server.destroy();
    await expectNoFdLeak();
  });

  it('destroys at any point: before start (the provider fd offered later is closed), while relaying, twice', async () => {
    const tally = new RelayTally();
    const [clientFd, consumerFd] = socketPairFds();
    const [providerFd, serverFd] = socketPairFds();
    const ends: RelayEnd[] = [];
    const early = new ByteRelay(consumerFd, tally, 1000, (end) => ends.push(end));
    early.destroy();
    expect(early.destroyed).toBe(true);
    expect(ends).toEqual([{ kind: 'closed', detail: null }]);
    early.start(providerFd);
    const client = new FdSocket(clientFd);
    const server = new FdSocket(serverFd);
    await Promise.all([readToEnd(client), readToEnd(server)]); // both peers closed: each sees its end
    client.destroy();
    server.destroy();

    const r = relayed();
    r.client.write(Buffer.from('ping'));
    await readBytes(r.server, 4);
    const clientEnd = readToEnd(r.client);
    const serverEnd = readToEnd(r.server);
    r.relay.destroy();
    r.relay.destroy();
    expect(r.ends).toEqual([{ kind: 'closed', detail: null }]);
    await Promise.all([clientEnd, serverEnd]);
    await loopTurns(3);
    expect(r.ends).toHaveLength(1); // no second report from the addon after a destroy
    r.client.destroy();
    r.server.destroy();
    await expectNoFdLeak();
  });

  it('relays 200 connections at once, each its own echo, into one tally', async () => {
    const tally = new RelayTally();
    const pairs = Array.from({ length: 200 }, () => relayed(60_000, tally));
    for (const { server } of pairs) server.on('data', ({ data }) => server.write(data));
    const replies = pairs.map(({ client }, i) => {
      const reply = readBytes(client, 6);
      client.write(Buffer.from(`c${String(i).padStart(5, '0')}`));
      return reply;
    });
    const got = await Promise.all(replies);
    expect(got.map(({ data }) => data.toString())).toEqual(
      pairs.map((_, i) => `c${String(i).padStart(5, '0')}`),
    );
    // Counters that already count other relays (a link's JavaScript ones) get the tally's added, once.
    const counters = { bytes: { toProvider: 5, toConsumer: 7 }, fds: { toProvider: 1, toConsumer: 0 } };
    tally.readInto(counters);
    tally.readInto(counters);
    expect(counters.bytes).toEqual({ toProvider: 1205, toConsumer: 1207 });
    expect(counters.fds).toEqual({ toProvider: 1, toConsumer: 0 });
    for (const { client } of pairs) client.destroy();
    for (const { server } of pairs) server.destroy();
    await eventually(() => pairs.every(({ ends }) => ends.length === 1), undefined, 'every relay to end');
    await expectNoFdLeak();
  });

  it('fails a relay the addon refuses at once, with the reason, both fds closed; bad handles are TypeErrors', () => {
    const [a, b] = socketPairFds();
    const ends: RelayEnd[] = [];
    new ByteRelay(a, new RelayTally(), 0, (end) => ends.push(end)).start(b); // idleHalfOpenMs 0: out of range
    expect(ends).toHaveLength(1);
    expect(ends[0]?.kind).toBe('failed');
    expect(ends[0]?.detail).toMatch(/idleHalfOpenMs must be an integer/);
    expect(() => fdio.close(a)).toThrow(/EBADF/);
    expect(() => fdio.close(b)).toThrow(/EBADF/);

    const raw = binding as {
      relayStart(c: number, p: number, t: unknown, idle: number, onEnd: () => void): unknown;
      relayStop(relay: unknown): void;
      tallyRead(tally: unknown): number[];
    };
    const [c, p] = socketPairFds();
    expect(() => raw.relayStart(c, p, {}, 1000, () => {})).toThrow(/not a relay tally/);
    expect(() => raw.relayStop({})).toThrow(/not a relay/);
    expect(() => raw.tallyRead(new RelayTally())).toThrow(/not a relay tally/);
    // Nothing was taken: the caller still owns both.
    closeFd(c);
    closeFd(p);
  });

  it('ends when both peers go away while both directions are held back', async () => {
    const r = relayedRaw();
    r.client.pause();
    await fillTowardsPausedClient(r);
    r.client.write(pattern(4 << 20, 5));
    await settled(() => r.counts().bytes.toProvider, 'bytes relayed to a provider that does not read');
    // Both go with bytes unread: each write the relay still has for them fails, and nothing can go anywhere.
    r.client.destroy();
    fdio.close(r.serverFd);
    await eventually(() => r.ends.length === 1, undefined, 'the relay to end');
    expect(r.ends[0]?.kind).toBe('failed');
    await expectNoFdLeak();
  });
});

describe('relays a tally holds (no JS handle)', () => {
  it('relay bytes and fds both ways, run until both peers close, and say nothing of a plain close', async () => {
    const r = heldRelayed();
    expect(r.tally.running).toBe(1);
    r.client.write(Buffer.from('hello'), [fileWithContent('to the provider')]);
    const atServer = await readBytes(r.server, 5);
    expect(atServer.data.toString()).toBe('hello');
    expect(contentOf(atServer.fds[0] as number)).toBe('to the provider');
    closeFd(atServer.fds[0] as number);
    r.server.write(Buffer.from('back'));
    expect((await readBytes(r.client, 4)).data.toString()).toBe('back');
    expect(r.counts()).toEqual({
      bytes: { toProvider: 5, toConsumer: 4 },
      fds: { toProvider: 1, toConsumer: 0 },
    });
    const serverEnded = readToEnd(r.server);
    r.client.end();
    await serverEnded;
    r.server.end();
    await eventually(() => r.tally.running === 0, undefined, 'the relay to end');
    expect(r.ends).toEqual([]);
    r.client.destroy();
    r.server.destroy();
    await expectNoFdLeak();
  });

  it("tell the tally's onTrouble of a failed side and of a reaped connection", async () => {
    const failing = heldRelayed();
    fdio.send(failing.serverFd, [Buffer.from('last words')], 0, null);
    const got = readToEnd(failing.client);
    failing.client.write(Buffer.from('unread'));
    await eventually(
      () => failing.counts().bytes.toProvider === 6,
      undefined,
      'the bytes to reach the provider',
    );
    fdio.close(failing.serverFd);
    expect((await got).data.toString()).toBe('last words');
    await eventually(() => failing.ends.length === 1, undefined, 'the failure');
    expect(failing.ends[0]).toMatchObject({
      kind: 'failed',
      detail: expect.stringMatching(/^provider recvmsg/),
    });
    expect(failing.tally.running).toBe(0);
    failing.client.destroy();

    const idle = heldRelayed(100);
    const serverEnded = readToEnd(idle.server);
    idle.client.end();
    await serverEnded;
    await eventually(() => idle.ends.length === 1, undefined, 'the reaper');
    expect(idle.ends[0]).toMatchObject({
      kind: 'reaped',
      detail: expect.stringMatching(/^half-open and idle/),
    });
    idle.client.destroy();
    idle.server.destroy();
    await expectNoFdLeak();
  });

  it("end at once with endAll, their tally's only, with nothing said", async () => {
    const ends: RelayEnd[] = [];
    const tally = new RelayTally((end) => ends.push(end));
    const held = Array.from({ length: 3 }, () =>
      withServer(wire(tally, ends, (consumerFd, providerFd) => tally.relay(consumerFd, providerFd, 60_000))),
    );
    const other = heldRelayed();
    for (const r of held) r.server.write(Buffer.from('held back by no one'));
    expect(tally.running).toBe(3);
    const streamEnds = held.flatMap((r) => [readToEnd(r.client), readToEnd(r.server)]);
    tally.endAll();
    expect(tally.running).toBe(0);
    await Promise.all(streamEnds); // every peer sees the end of its stream
    other.client.write(Buffer.from('still'));
    expect((await readBytes(other.server, 5)).data.toString()).toBe('still');
    expect(other.tally.running).toBe(1);
    await loopTurns(3);
    expect(ends).toEqual([]);
    for (const r of [...held, other]) {
      r.client.destroy();
      r.server.destroy();
    }
    await expectNoFdLeak();
  });

  it('refuse what relayStart refuses, closing both fds', async () => {
    const ends: RelayEnd[] = [];
    const tally = new RelayTally((end) => ends.push(end));
    const [clientFd, consumerFd] = socketPairFds();
    tally.relay(consumerFd, -1, 1000);
    expect(ends).toEqual([{ kind: 'failed', detail: expect.stringContaining('fd') }]);
    expect(tally.running).toBe(0);
    closeFd(clientFd);
    await expectNoFdLeak();
  });
});

describe('relays of a worker thread', () => {
  // The build the binding loaded (the sanitizer run's, under `npm run test:asan`).
  const addon =
    process.env.PVX_NATIVE_ADDON ||
    join(import.meta.dirname, '..', '..', 'build', 'Release', 'pvx_native.node');

  /**
   * A worker starts relays in many states (running, half-open, bytes and a passed fd held back by a provider that
   * does not read, ended by its peers, stopped), hands back the peers' fds, then ends as `exit` says: its
   * environment's cleanup must close every fd the relays hold and free them (no sanitizer finding).
   */
  function workerWithRelays(exit: 'terminate' | 'stop all and return'): Worker {
    return new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const native = require(workerData.addon);
       const tally = native.relayTally();
       const relays = [];
       const peers = [];
       const relay = () => {
         const [client, consumer] = native.socketPair();
         const [provider, server] = native.socketPair();
         relays.push(native.relayStart(consumer, provider, tally, 60000, () => {}));
         peers.push(client, server);
         return { client, server };
       };
       relay();
       native.shutdownWrite(relay().client);
       // The server reads nothing: bytes and a passed fd wait in the socket and in the relay's outbox.
       const flooded = relay();
       const passed = native.socketPair();
       native.send(flooded.client, [Buffer.from('fd')], 0, [passed[0]]);
       native.close(passed[0]); // the socket holds its own copy now
       native.close(passed[1]);
       const chunk = Buffer.alloc(1 << 16);
       while (native.send(flooded.client, [chunk], 0, null) > 0);
       const gone = relay();
       native.close(gone.client);
       native.close(gone.server);
       peers.splice(-2);
       relay();
       native.relayStop(relays.at(-1));
       // Two the tally holds: one running, one the server does not read.
       for (let i = 0; i < 2; i++) {
         const [client, consumer] = native.socketPair();
         const [provider, server] = native.socketPair();
         native.tallyRelay(consumer, provider, tally, 60000, () => {});
         peers.push(client, server);
         if (i === 1) while (native.send(client, [chunk], 0, null) > 0);
       }
       if (workerData.exit === 'stop all and return') native.tallyEndAll(tally);
       if (workerData.exit === 'stop all and return') for (const handle of relays) native.relayStop(handle);
       parentPort.postMessage(peers);
       if (workerData.exit === 'stop all and return') parentPort.unref();`,
      { eval: true, workerData: { addon, exit } },
    );
  }

  it('are ended and their fds closed when the worker is terminated', async () => {
    const worker = workerWithRelays('terminate');
    const [peers] = (await once(worker, 'message')) as [number[]];
    expect(await worker.terminate()).toBe(1);
    // Reaching this line means the worker's environment shut down without aborting the process.
    for (const fd of peers) closeFd(fd);
    await expectNoFdLeak();
  });

  it('do not keep a worker alive once they are stopped', async () => {
    const worker = workerWithRelays('stop all and return');
    const exited = once(worker, 'exit');
    const [peers] = (await once(worker, 'message')) as [number[]];
    expect((await exited)[0]).toBe(0);
    for (const fd of peers) closeFd(fd);
    await expectNoFdLeak();
  });
});

/**
 * Has the raw server end write until the kernel takes no more (its socket, the relay's outbox, the paused consumer's
 * socket are full); returns what it sent.
 */
async function fillTowardsPausedClient(r: RawRelayed): Promise<Buffer> {
  const chunk = pattern(64 * 1024, 11);
  const sent: Buffer[] = [];
  for (;;) {
    const n = fdio.send(r.serverFd, [chunk], 0, null);
    if (n < 0) {
      await settled(() => r.counts().bytes.toConsumer, 'bytes relayed to a paused consumer', 5);
      const more = fdio.send(r.serverFd, [chunk], 0, null);
      if (more < 0) break;
      sent.push(chunk.subarray(0, more));
      continue;
    }
    sent.push(chunk.subarray(0, n));
  }
  return Buffer.concat(sent);
}

/**
 * Fails if the process spins while the relay waits: over a steady wait (20 ms polls), it uses less than half of
 * one core, far above what waiting costs (a few percent) and far below a loop that a hung-up socket keeps waking.
 */
async function expectNoSpin(what: string): Promise<void> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  await settled(() => 0, what, 25);
  const { user, system } = process.cpuUsage(cpu);
  expect((user + system) / 1000, `CPU time while ${what}`).toBeLessThan((performance.now() - started) / 2);
}

describe('the relay and a hung-up side it is not reading', () => {
  it('delivers everything a provider sent before it closed while the consumer was not reading', async () => {
    const r = relayedRaw();
    r.client.pause();
    // The provider writes until the kernel takes no more (its socket, the relay's outbox, the consumer's socket
    // are full), then closes: the relay's provider side hangs up while it is not being read.
    const all = await fillTowardsPausedClient(r);
    fdio.close(r.serverFd);
    await expectNoSpin('the provider hung up and is not read');
    const got = readToEnd(r.client);
    r.client.resume();
    expect(sha((await got).data)).toBe(sha(all));
    r.client.end();
    await eventually(() => r.ends.length === 1, undefined, 'the relay to end');
    expect(r.ends[0]?.kind).toBe('closed');
    r.client.destroy();
    await expectNoFdLeak();
  });

  it('still delivers what a provider sent before it closed when a write to it fails first (EPIPE)', async () => {
    const r = relayedRaw();
    r.client.pause();
    const sent = await fillTowardsPausedClient(r);
    // The provider closes having read everything (no reset), with what it sent still in the relay's socket,
    // unread: the consumer's outbox is full, so the provider's side is not being read.
    fdio.close(r.serverFd);
    // The consumer speaks: the relay's write to the provider fails (EPIPE) before it read the provider's last bytes.
    r.client.write(Buffer.from('too late'));
    await eventually(() => r.counts().bytes.toProvider === 8, undefined, 'the consumer to be read');
    await expectNoSpin('the provider failed a write, hung up and is not read');
    const got = readToEnd(r.client);
    r.client.resume();
    expect(sha((await got).data)).toBe(sha(sent));
    r.client.end();
    await eventually(() => r.ends.length === 1, undefined, 'the relay to end');
    expect(r.ends[0]?.kind).toBe('failed');
    expect(r.ends[0]?.detail).toMatch(/^provider sendmsg: EPIPE/);
    r.client.destroy();
    await expectNoFdLeak();
  });

  it('still delivers what a provider sent before it closed when the outbox to it fails first (EPIPE)', async () => {
    const r = relayedRaw();
    r.client.pause();
    const sent = await fillTowardsPausedClient(r);
    // Held back both ways: the provider does not read either, so what the consumer sends waits in an outbox too.
    r.client.write(pattern(4 << 20, 5));
    await settled(() => r.counts().bytes.toProvider, 'bytes relayed to a provider that does not read');
    // The provider goes away (with bytes unread: a reset): the relay's pending write to it fails first.
    fdio.close(r.serverFd);
    const got = readToEnd(r.client);
    r.client.resume();
    expect(sha((await got).data)).toBe(sha(sent));
    r.client.destroy();
    await eventually(() => r.ends.length === 1, undefined, 'the relay to end');
    expect(r.ends[0]?.kind).toBe('failed');
    await expectNoFdLeak();
  });
});

interface Stream {
  bytes: Buffer[];
  /** Each fd sent, by its file's content, with the stream offset of the byte it went with. */
  fds: { label: string; offset: number }[];
}

/** What one side receives: the bytes, and each fd with the stream offset of the chunk it came in. */
function collect(socket: FdSocket): Promise<Stream> {
  const received: Stream = { bytes: [], fds: [] };
  let offset = 0;
  socket.on('data', ({ data, fds }) => {
    for (const fd of fds) {
      received.fds.push({ label: contentOf(fd), offset });
      closeFd(fd);
    }
    received.bytes.push(data);
    offset += data.length;
  });
  return new Promise((resolve) => socket.once('end', () => resolve(received)));
}

/** Writes a random script into `socket` (sizes up to 192 KiB, a few fds on some writes), then its end. */
async function sendScript(socket: FdSocket, random: () => number, label: string): Promise<Stream> {
  const sent: Stream = { bytes: [], fds: [] };
  let offset = 0;
  const writes = 5 + Math.floor(random() * 40);
  for (let i = 0; i < writes; i++) {
    const size = 1 + Math.floor(random() ** 3 * 192 * 1024);
    const data = pattern(size, Math.floor(random() * 256));
    const fds: number[] = [];
    if (random() < 0.3) {
      for (let n = 1 + Math.floor(random() * 3); n > 0; n--) {
        const name = `${label}-${i}-${n}`;
        fds.push(fileWithContent(name));
        sent.fds.push({ label: name, offset });
      }
    }
    sent.bytes.push(data);
    offset += size;
    // The write owns the fds from here (closed once sent).
    if (!socket.write(data, fds)) await new Promise<void>((resolve) => socket.once('drain', () => resolve()));
    if (random() < 0.2) await new Promise((resolve) => setTimeout(resolve, random() * 5));
  }
  socket.end();
  return sent;
}

/** Pauses and resumes the reader at random moments until it ends, so the relay meets backpressure everywhere. */
function stutter(socket: FdSocket, random: () => number): void {
  let ended = false;
  socket.once('end', () => {
    ended = true;
  });
  const step = () => {
    if (ended) return;
    if (random() < 0.5) socket.pause();
    else socket.resume();
    setTimeout(step, random() * 4);
  };
  step();
  socket.once('end', () => socket.resume());
}

function expectRelayed(sent: Stream, received: Stream, what: string): void {
  expect(sha(Buffer.concat(received.bytes)), `${what}: bytes`).toBe(sha(Buffer.concat(sent.bytes)));
  expect(
    received.fds.map((fd) => fd.label),
    `${what}: fds in order`,
  ).toEqual(sent.fds.map((fd) => fd.label));
  // An fd never arrives later than the byte it was sent with (it may come with earlier bytes of the same read).
  received.fds.forEach((fd, i) => {
    expect(fd.offset, `${what}: fd ${fd.label} arrived at ${fd.offset}`).toBeLessThanOrEqual(
      sent.fds[i]?.offset ?? -1,
    );
  });
}

describe.each([
  { holder: 'a JS handle', start: () => relayed(), plainEnd: [{ kind: 'closed', detail: null }] },
  { holder: 'its tally', start: () => heldRelayed(), plainEnd: [] },
])('the relay held by $holder under random traffic (fixed seed)', ({ start, plainEnd }) => {
  it('delivers every byte and fd of 12 random sessions both ways, in order, never an fd after its byte', async () => {
    const random = prng(CI_SEED);
    for (let session = 0; session < 12; session++) {
      const r = start();
      const atServer = collect(r.server);
      const atClient = collect(r.client);
      stutter(r.server, random);
      stutter(r.client, random);
      const [toServer, toClient] = await Promise.all([
        sendScript(r.client, prng(CI_SEED + 2 * session), `c${session}`),
        sendScript(r.server, prng(CI_SEED + 2 * session + 1), `s${session}`),
      ]);
      expectRelayed(toServer, await atServer, `session ${session} (seed ${CI_SEED}), consumer to provider`);
      expectRelayed(toClient, await atClient, `session ${session} (seed ${CI_SEED}), provider to consumer`);
      await eventually(
        () => r.tally.running === 0 && r.ends.length === plainEnd.length,
        undefined,
        'the relay to end',
      );
      expect(r.ends).toEqual(plainEnd);
      r.client.destroy();
      r.server.destroy();
    }
    await expectNoFdLeak();
  });
});
