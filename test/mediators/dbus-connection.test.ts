// When a D-Bus connection of a role no policy narrows leaves JavaScript: after BEGIN, once nothing of it is held
// (no partial message, no fd waiting), and not before. The chunk boundaries are the point here, so the relay is a
// recorder driven chunk by chunk; test/mediators/dbus-bus.test.ts covers the same against a real bus and clients.
import { describe, expect, it } from 'vitest';
import { DBusConnection } from '../../mediators/dbus-connection.js';
import type { Direction, FilterPair, Relay } from '../../mediators/relay.js';
import { MessageType, marshal, uidToHex } from '../../protocols/dbus/index.js';

const GUID = '0123456789abcdef0123456789abcdef';
const HELLO = marshal({
  type: MessageType.METHOD_CALL,
  flags: 0,
  serial: 1,
  destination: 'org.freedesktop.DBus',
  path: '/org/freedesktop/DBus',
  interface: 'org.freedesktop.DBus',
  member: 'Hello',
});

/** A connection on a recording relay whose `handOff` succeeds unless told otherwise. */
function connection(handOffSucceeds = () => true) {
  const forwarded: Record<Direction, Buffer[]> = { toProvider: [], toConsumer: [] };
  const handOffs: boolean[] = [];
  const taken: [number, number][] = [];
  let filters: FilterPair | undefined;
  const relay: Relay = {
    finish() {},
    hold() {},
    reject(_direction, reason) {
      throw reason;
    },
    close() {},
    halfClose() {},
    transfer() {
      throw new Error('no transfer on a D-Bus connection');
    },
    sink: (direction) => ({
      forward: (data) => forwarded[direction].push(data),
      reply: (data) => forwarded[direction === 'toProvider' ? 'toConsumer' : 'toProvider'].push(data),
    }),
    handOff(take) {
      const succeeds = handOffSucceeds();
      handOffs.push(succeeds);
      if (succeeds) take(3, 4);
      return succeeds;
    },
  };
  new DBusConnection(
    1001,
    (pair) => {
      filters = pair;
      return relay;
    },
    (consumerFd, providerFd) => taken.push([consumerFd, providerFd]),
  );
  const { toProvider, toConsumer } = filters as FilterPair;
  const fromClient = (data: Buffer | string) =>
    toProvider.push({ data: Buffer.from(data), fds: [] }, relay.sink('toProvider'));
  const fromBus = (data: Buffer | string) =>
    toConsumer.push({ data: Buffer.from(data), fds: [] }, relay.sink('toConsumer'));
  // Through the handshake, up to the bus's OK.
  fromClient(`\0AUTH EXTERNAL ${uidToHex(0)}\r\n`);
  fromBus(`OK ${GUID}\r\n`);
  return { fromClient, fromBus, forwarded, handOffs, taken };
}

/** Lets queued microtasks (the hand-off's) run. */
const microtasks = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('a role no policy narrows', () => {
  it('is handed off after BEGIN and the Hello that came with it', async () => {
    const c = connection();
    c.fromClient(Buffer.concat([Buffer.from('BEGIN\r\n'), HELLO]));
    expect(c.handOffs).toEqual([]); // not within the step: its writes are flushed first
    await microtasks();
    expect(c.handOffs).toEqual([true]);
    expect(c.taken).toEqual([[3, 4]]);
    expect(Buffer.concat(c.forwarded.toProvider).includes(HELLO)).toBe(true);
  });

  it('waits while a message pipelined after BEGIN is partial, and goes once it is whole', async () => {
    const c = connection();
    c.fromClient(Buffer.concat([Buffer.from('BEGIN\r\n'), HELLO.subarray(0, 20)]));
    await microtasks();
    expect(c.handOffs).toEqual([]);
    c.fromClient(HELLO.subarray(20));
    await microtasks();
    expect(c.handOffs).toEqual([true]);
    expect(Buffer.concat(c.forwarded.toProvider).includes(HELLO)).toBe(true);
  });

  it('tries again after the next chunk when the relay could not hand off (writes still queued)', async () => {
    let attempts = 0;
    const c = connection(() => ++attempts > 1);
    c.fromClient(Buffer.from('BEGIN\r\n'));
    await microtasks();
    expect(c.handOffs).toEqual([false]);
    c.fromBus(Buffer.alloc(0)); // any chunk from either side
    c.fromClient(HELLO);
    await microtasks();
    expect(c.handOffs).toEqual([false, true]); // one try per turn, however many chunks came
    c.fromClient(HELLO);
    await microtasks();
    expect(c.handOffs).toEqual([false, true]);
  });

  it('is never handed off before BEGIN', async () => {
    const c = connection();
    c.fromClient('NEGOTIATE_UNIX_FD\r\n');
    await microtasks();
    expect(c.handOffs).toEqual([]);
  });
});
