// The Wayland session's two filters, driven directly with chunks: framing, fds per message and per write, object
// ids, hidden globals and refused binds. (The same code against real weston: wayland-link.test.ts.)
import { fstatSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../log/logger.js';
import type { FilterSink } from '../../mediators/relay.js';
import { WaylandConnection, ZOMBIES_KEPT } from '../../mediators/wayland-connection.js';
import { MAX_FDS_AHEAD_OF_MESSAGES } from '../../mediators/wayland-framer.js';
import { DEFAULT_POLICY, visibilityFor } from '../../mediators/wayland-policy.js';
import { closeFd } from '../../native/fds.js';
import {
  wl_callback,
  wl_data_device_manager,
  wl_data_source,
  wl_display,
  wl_registry,
  wl_shm,
} from '../../protocols/wayland/generated/wayland.generated.js';
import type { MessageSpec } from '../../protocols/wayland/spec.js';
import {
  decodeMessage,
  encodeMessage,
  type MessageArgs,
  messageNamed,
  readHeader,
  SERVER_ID_START,
} from '../../protocols/wayland/wire.js';
import { contentOf, fileWithContent } from '../../testkit/mesh.js';

interface Forward {
  data: Buffer;
  fds: number[];
}

class RecordingSink implements FilterSink {
  readonly forwards: Forward[] = [];
  readonly replies: Buffer[] = [];
  forward(data: Buffer, fds: number[] = []) {
    this.forwards.push({ data: Buffer.from(data), fds });
  }
  reply(data: Buffer) {
    this.replies.push(Buffer.from(data));
  }
  get bytes(): Buffer {
    return Buffer.concat(this.forwards.map((forward) => forward.data));
  }
  get fds(): number[] {
    return this.forwards.flatMap((forward) => forward.fds);
  }
}

const opened: number[] = [];
function openFds(count: number, label = 'fd'): number[] {
  const fds = Array.from({ length: count }, (_, index) => fileWithContent(`${label} ${index}`));
  opened.push(...fds);
  return fds;
}
function isOpen(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}
afterEach(() => {
  for (const fd of opened.splice(0)) if (isOpen(fd)) closeFd(fd);
});

function message<M extends MessageSpec>(objectId: number, spec: M, args: MessageArgs<M>): Buffer {
  return encodeMessage(objectId, spec, args).data;
}

const getRegistry = messageNamed(wl_display.requests, 'get_registry');
const sync = messageNamed(wl_display.requests, 'sync');
const bind = messageNamed(wl_registry.requests, 'bind');
const global = messageNamed(wl_registry.events, 'global');
const globalRemove = messageNamed(wl_registry.events, 'global_remove');
const deleteId = messageNamed(wl_display.events, 'delete_id');
const done = messageNamed(wl_callback.events, 'done');
const createPool = messageNamed(wl_shm.requests, 'create_pool');
const createSource = messageNamed(wl_data_device_manager.requests, 'create_data_source');
const offer = messageNamed(wl_data_source.requests, 'offer');
const displayError = messageNamed(wl_display.events, 'error');

const GLOBALS = [
  { name: 1, interface: 'wl_shm', version: 1 },
  { name: 2, interface: 'wl_data_device_manager', version: 3 },
  { name: 3, interface: 'weston_screenshooter', version: 1 },
  { name: 4, interface: 'zwlr_screencopy_manager_v1', version: 3 },
];

/** A session for `role` whose client has a registry (id 2) that was shown GLOBALS (as the role allows). */
function sessionWithRegistry(role = 'any') {
  const refused: string[] = [];
  const session = new WaylandConnection({
    visible: visibilityFor(DEFAULT_POLICY, role),
    log: silentLogger,
    refused: (what) => refused.push(what),
  });
  const client = new RecordingSink();
  const compositor = new RecordingSink();
  session.toProvider.push({ data: message(1, getRegistry, { registry: 2 }), fds: [] }, client);
  const events = Buffer.concat(
    GLOBALS.map(({ name, interface: iface, version }) =>
      message(2, global, { name, interface: iface, version }),
    ),
  );
  session.toConsumer.push({ data: events, fds: [] }, compositor);
  return { session, client, compositor, refused };
}

function bindMessage(name: number, iface: string, id: number, version = 1): Buffer {
  return message(2, bind, { name, id: { interface: iface, version, id } });
}

describe('framing', () => {
  it('forwards the same bytes however the stream is cut', () => {
    const stream = Buffer.concat([
      message(1, getRegistry, { registry: 2 }),
      message(1, sync, { callback: 3 }),
      bindMessage(1, 'wl_shm', 4),
      message(1, sync, { callback: 5 }),
    ]);
    const events = Buffer.concat(GLOBALS.map((g) => message(2, global, { ...g })));
    for (let cut = 1; cut < stream.length; cut++) {
      const session = new WaylandConnection({ visible: () => true, log: silentLogger, refused: () => {} });
      const client = new RecordingSink();
      session.toProvider.push({ data: stream.subarray(0, 12), fds: [] }, client);
      session.toConsumer.push({ data: events, fds: [] }, new RecordingSink());
      session.toProvider.push({ data: stream.subarray(12, Math.max(12, cut)), fds: [] }, client);
      session.toProvider.push({ data: stream.subarray(Math.max(12, cut)), fds: [] }, client);
      session.toProvider.end();
      expect(client.bytes.equals(stream)).toBe(true);
      // Only whole messages go out.
      for (const { data } of client.forwards) {
        let offset = 0;
        while (offset < data.length) offset += readHeader(data, offset).size;
        expect(offset).toBe(data.length);
      }
    }
  });

  it('sends 100 fds of one chunk in writes of at most 28, each fd with its own message, in order', () => {
    const { session, client } = sessionWithRegistry();
    session.toProvider.push({ data: bindMessage(1, 'wl_shm', 3), fds: [] }, client);
    const fds = openFds(100, 'pool');
    const requests = fds.map((_, index) => message(3, createPool, { id: 10 + index, fd: 0, size: 4096 }));
    const before = client.forwards.length;
    session.toProvider.push({ data: Buffer.concat(requests), fds }, client);
    const writes = client.forwards.slice(before);
    expect(writes.length).toBe(4);
    let next = 0;
    for (const write of writes) {
      expect(write.fds.length).toBeLessThanOrEqual(28);
      // Every message in this write is a create_pool carrying exactly one of these fds.
      let offset = 0;
      let messages = 0;
      while (offset < write.data.length) {
        const header = readHeader(write.data, offset);
        expect(header.opcode).toBe(createPool.opcode);
        offset += header.size;
        messages++;
      }
      expect(write.fds).toEqual(fds.slice(next, next + messages));
      next += messages;
    }
    expect(next).toBe(100);
    expect(contentOf(client.fds[99] as number)).toBe('pool 99');
  });

  it('lets fds arrive ahead of their message, never after it', () => {
    const { session, client } = sessionWithRegistry();
    session.toProvider.push({ data: bindMessage(1, 'wl_shm', 3), fds: [] }, client);
    const pool = message(3, createPool, { id: 10, fd: 0, size: 4096 });
    // Ahead: the fd rides with a sync before the message that uses it, and goes out with that message.
    const [early] = openFds(1);
    session.toProvider.push({ data: message(1, sync, { callback: 4 }), fds: [early as number] }, client);
    session.toProvider.push({ data: pool, fds: [] }, client);
    expect(client.forwards.at(-1)).toEqual({ data: pool, fds: [early] });
    // After: the message is complete without its fd. libwayland reads it as "no fd": so do we.
    expect(() =>
      session.toProvider.push({ data: message(3, createPool, { id: 11, fd: 0, size: 1 }), fds: [] }, client),
    ).toThrow(/carries 1 fds but only 0 were received/);
  });

  it('accepts fds that arrive with the last bytes of their message', () => {
    const { session, client } = sessionWithRegistry();
    session.toProvider.push({ data: bindMessage(1, 'wl_shm', 3), fds: [] }, client);
    const pool = message(3, createPool, { id: 10, fd: 0, size: 4096 });
    session.toProvider.push({ data: pool.subarray(0, 8), fds: [] }, client);
    // The rest arrives with the fd: still no later than the message's last byte, which libwayland accepts.
    const [fd] = openFds(1);
    session.toProvider.push({ data: pool.subarray(8), fds: [fd as number] }, client);
    expect(client.forwards.at(-1)?.fds).toEqual([fd]);
  });

  it('closes the connection on a bad size, a truncated stream, or fds nobody uses', () => {
    const bad = message(1, sync, { callback: 3 });
    bad.writeUInt16LE(6, 6);
    expect(() =>
      new WaylandConnection({ visible: () => true, log: silentLogger, refused: () => {} }).toProvider.push(
        { data: bad.subarray(0, 8), fds: [] },
        new RecordingSink(),
      ),
    ).toThrow(/message size 6/);

    const truncated = new WaylandConnection({ visible: () => true, log: silentLogger, refused: () => {} });
    truncated.toProvider.push(
      { data: message(1, sync, { callback: 3 }).subarray(0, 10), fds: [] },
      new RecordingSink(),
    );
    expect(() => truncated.toProvider.end()).toThrow(
      /truncated message: the stream ended after 10 bytes of a 12-byte message/,
    );

    const hoarder = new WaylandConnection({ visible: () => true, log: silentLogger, refused: () => {} });
    const fds = openFds(MAX_FDS_AHEAD_OF_MESSAGES + 1);
    expect(() =>
      hoarder.toProvider.push({ data: message(1, sync, { callback: 3 }), fds }, new RecordingSink()),
    ).toThrow(/fds received that no message uses/);
    // The relay disposes of a rejected connection's filters: the chunk's fds are closed then, not leaked.
    hoarder.toProvider.dispose();
    expect(fds.filter(isOpen)).toEqual([]);
  });

  it('closes the fds it still holds when disposed', () => {
    const session = new WaylandConnection({ visible: () => true, log: silentLogger, refused: () => {} });
    const fds = openFds(3);
    session.toProvider.push(
      { data: message(1, sync, { callback: 3 }).subarray(0, 8), fds },
      new RecordingSink(),
    );
    expect(fds.every(isOpen)).toBe(true);
    session.toProvider.dispose();
    expect(fds.filter(isOpen)).toEqual([]);
  });
});

describe('object ids', () => {
  it('rejects messages to unknown objects and unknown opcodes', () => {
    const { session, client, compositor } = sessionWithRegistry();
    expect(() =>
      session.toProvider.push({ data: message(77, sync, { callback: 3 }), fds: [] }, client),
    ).toThrow(/client sent opcode 0 to unknown object 77/);
    const unknownOpcode = message(1, sync, { callback: 3 });
    unknownOpcode.writeUInt16LE(9, 4);
    const other = sessionWithRegistry();
    expect(() => other.session.toProvider.push({ data: unknownOpcode, fds: [] }, other.client)).toThrow(
      /unknown request opcode 9 to wl_display@1/,
    );
    expect(() =>
      session.toConsumer.push(
        { data: message(SERVER_ID_START + 5, done, { callback_data: 1 }), fds: [] },
        compositor,
      ),
    ).toThrow(/compositor sent opcode 0 to unknown object 4278190085/);
  });

  it('refuses a duplicated new_id until the compositor deletes the id, then allows its reuse', () => {
    const { session, client, compositor } = sessionWithRegistry();
    session.toProvider.push({ data: message(1, sync, { callback: 3 }), fds: [] }, client);
    const again = () => session.toProvider.push({ data: message(1, sync, { callback: 3 }), fds: [] }, client);
    expect(again).toThrow(/client reused new_id 3 while wl_callback@3 is still alive/);

    const fresh = sessionWithRegistry();
    fresh.session.toProvider.push({ data: message(1, sync, { callback: 3 }), fds: [] }, fresh.client);
    fresh.session.toConsumer.push(
      {
        data: Buffer.concat([message(3, done, { callback_data: 7 }), message(1, deleteId, { id: 3 })]),
        fds: [],
      },
      fresh.compositor,
    );
    fresh.session.toProvider.push({ data: message(1, sync, { callback: 3 }), fds: [] }, fresh.client);
    expect(readHeader(fresh.client.forwards.at(-1)?.data as Buffer, 0).objectId).toBe(1);
    expect(compositor.forwards.length).toBe(1);
  });

  it('still understands a deleted object until its id is reused (a zombie)', () => {
    const { session, client, compositor } = sessionWithRegistry();
    session.toProvider.push({ data: bindMessage(2, 'wl_data_device_manager', 3, 3), fds: [] }, client);
    session.toProvider.push({ data: message(3, createSource, { id: 4 }), fds: [] }, client);
    session.toConsumer.push({ data: message(1, deleteId, { id: 4 }), fds: [] }, compositor);
    const late = message(4, offer, { mime_type: 'text/plain' });
    session.toProvider.push({ data: late, fds: [] }, client);
    expect(client.forwards.at(-1)?.data).toEqual(late);
  });

  it('keeps only the ZOMBIES_KEPT ids freed last: a client that never reuses ids cannot grow the session', () => {
    const { session, client, compositor } = sessionWithRegistry();
    session.toProvider.push({ data: bindMessage(2, 'wl_data_device_manager', 3, 3), fds: [] }, client);
    const first = 4;
    const last = first + ZOMBIES_KEPT; // one more freed id than are kept
    // Id 5 is freed, reused and freed again among the last: its second life is what counts.
    for (let id = first; id <= last; id += 1) {
      session.toProvider.push({ data: message(3, createSource, { id }), fds: [] }, client);
      session.toConsumer.push({ data: message(1, deleteId, { id }), fds: [] }, compositor);
      if (id === last - 1) {
        session.toProvider.push({ data: message(3, createSource, { id: 5 }), fds: [] }, client);
        session.toConsumer.push({ data: message(1, deleteId, { id: 5 }), fds: [] }, compositor);
      }
    }
    const offerTo = (id: number) => () =>
      session.toProvider.push({ data: message(id, offer, { mime_type: 'text/plain' }), fds: [] }, client);
    expect(offerTo(first)).toThrow(/unknown object 4/);
    for (const id of [5, first + 2, last]) {
      offerTo(id)();
      expect(readHeader(client.forwards.at(-1)?.data as Buffer, 0).objectId).toBe(id);
    }
  });

  it('relays objects of interfaces it has no table for, their fds included', () => {
    const { session, client } = sessionWithRegistry('compositor-admin');
    session.toProvider.push({ data: bindMessage(3, 'weston_screenshooter', 3), fds: [] }, client);
    // weston_screenshooter.shoot(output, buffer, ...) as bytes we cannot check, with an fd riding along.
    const opaque = Buffer.alloc(16);
    opaque.writeUInt32LE(3, 0);
    opaque.writeUInt32LE((16 << 16) | 0, 4);
    const [fd] = openFds(1);
    session.toProvider.push({ data: opaque, fds: [fd as number] }, client);
    expect(client.forwards.at(-1)).toEqual({ data: opaque, fds: [fd] });
    // Ids it may have created are unknown to us: relayed as well, rather than refused.
    session.toProvider.push({ data: message(1234, sync, { callback: 5 }), fds: [] }, client);
    expect(readHeader(client.forwards.at(-1)?.data as Buffer, 0).objectId).toBe(1234);
    // From now on fds cannot be matched to messages: each message takes what is queued, so none is held back.
    session.toProvider.push({ data: bindMessage(1, 'wl_shm', 6), fds: [] }, client);
    const [second, third] = openFds(2);
    const pool = message(6, createPool, { id: 7, fd: 0, size: 4096 });
    session.toProvider.push(
      { data: Buffer.concat([opaque, pool]), fds: [second as number, third as number] },
      client,
    );
    expect(client.forwards.at(-1)).toEqual({ data: Buffer.concat([opaque, pool]), fds: [second, third] });
  });

  it('relays unknown opcodes of an object bound at a newer version than its table', () => {
    const { session, client } = sessionWithRegistry();
    session.toProvider.push({ data: bindMessage(1, 'wl_shm', 3, 9), fds: [] }, client);
    const newer = Buffer.alloc(8);
    newer.writeUInt32LE(3, 0);
    newer.writeUInt32LE((8 << 16) | 5, 4);
    session.toProvider.push({ data: newer, fds: [] }, client);
    expect(client.forwards.at(-1)?.data).toEqual(newer);
  });

  it('refuses a message of plain numbers (forwarded undecoded) whose size is not its arguments', () => {
    const { session, client, compositor } = sessionWithRegistry();
    session.toProvider.push({ data: message(1, sync, { callback: 3 }), fds: [] }, client);
    const answer = message(3, done, { callback_data: 7 });
    session.toConsumer.push({ data: answer, fds: [] }, compositor);
    expect(compositor.forwards.at(-1)?.data).toEqual(answer);
    const long = Buffer.concat([answer, Buffer.alloc(4)]);
    long.writeUInt16LE(16, 6);
    expect(() => session.toConsumer.push({ data: long, fds: [] }, compositor)).toThrow(
      /malformed wl_callback.done from compositor on object 3: done: 4 bytes after the last argument/,
    );
  });

  it('creates the objects of undecoded messages, refuses their null new_ids, and decodes a wrong-sized delete_id', () => {
    const { session, client, compositor } = sessionWithRegistry();
    session.toProvider.push({ data: message(1, sync, { callback: 3 }), fds: [] }, client);
    session.toConsumer.push({ data: message(3, done, { callback_data: 7 }), fds: [] }, compositor);
    expect(readHeader(compositor.forwards.at(-1)?.data as Buffer, 0).objectId).toBe(3);
    const nullCallback = message(1, sync, { callback: 4 });
    nullCallback.writeUInt32LE(0, 8);
    expect(() => session.toProvider.push({ data: nullCallback, fds: [] }, client)).toThrow(
      /malformed wl_display.sync from client on object 1: sync: argument 'callback' is null/,
    );
    const long = Buffer.concat([message(1, deleteId, { id: 3 }), Buffer.alloc(4)]);
    long.writeUInt16LE(16, 6);
    expect(() => session.toConsumer.push({ data: long, fds: [] }, compositor)).toThrow(
      /malformed wl_display.delete_id from compositor on object 1/,
    );
  });

  it('rejects malformed arguments with the message named', () => {
    const { session, client } = sessionWithRegistry();
    session.toProvider.push({ data: bindMessage(1, 'wl_shm', 3), fds: [] }, client);
    const short = message(3, createPool, { id: 10, fd: 0, size: 4096 }).subarray(0, 12);
    short.writeUInt16LE(12, 6);
    const [fd] = openFds(1);
    expect(() => session.toProvider.push({ data: short, fds: [fd as number] }, client)).toThrow(
      /malformed wl_shm.create_pool from client on object 3: create_pool: argument 'size' is cut off/,
    );
  });
});

describe('global filtering', () => {
  it('drops hidden globals and their removal for role any, shows everything to compositor-admin', () => {
    const any = sessionWithRegistry('any');
    const shown = (sink: RecordingSink) => {
      const names: string[] = [];
      let offset = 0;
      const data = sink.bytes;
      while (offset < data.length) {
        const { size } = readHeader(data, offset);
        names.push(decodeMessage(global, data, offset, offset + size, []).interface);
        offset += size;
      }
      return names;
    };
    expect(shown(any.compositor)).toEqual(['wl_shm', 'wl_data_device_manager']);
    const admin = sessionWithRegistry('compositor-admin');
    expect(shown(admin.compositor)).toEqual(GLOBALS.map((g) => g.interface));

    const removals = Buffer.concat([
      message(2, globalRemove, { name: 3 }),
      message(2, globalRemove, { name: 1 }),
    ]);
    const sink = new RecordingSink();
    any.session.toConsumer.push({ data: removals, fds: [] }, sink);
    expect(sink.bytes).toEqual(message(2, globalRemove, { name: 1 }));
  });

  it('answers a bind to a hidden global with the error libwayland gives, without forwarding it', () => {
    const { session, client, refused } = sessionWithRegistry('any');
    const before = client.forwards.length;
    expect(() =>
      session.toProvider.push({ data: bindMessage(3, 'weston_screenshooter', 3), fds: [] }, client),
    ).toThrow(/bind to global 3 \(weston_screenshooter\) refused: hidden from this role/);
    expect(refused).toEqual(['bind weston_screenshooter']);
    expect(client.forwards.length).toBe(before);
    expect(client.replies).toHaveLength(1);
    const reply = client.replies[0] as Buffer;
    expect(readHeader(reply, 0)).toMatchObject({ objectId: 1, opcode: displayError.opcode });
    expect(decodeMessage(displayError, reply, 0, reply.length, [])).toEqual({
      object_id: 2,
      code: 0,
      message: 'invalid global weston_screenshooter (3)',
    });
  });

  it('refuses binds to names never shown, or under another interface name', () => {
    const unknown = sessionWithRegistry('any');
    expect(() =>
      unknown.session.toProvider.push({ data: bindMessage(40, 'wl_shm', 3), fds: [] }, unknown.client),
    ).toThrow(/never offered to this client/);
    const disguised = sessionWithRegistry('any');
    expect(() =>
      disguised.session.toProvider.push(
        { data: bindMessage(1, 'weston_screenshooter', 3), fds: [] },
        disguised.client,
      ),
    ).toThrow(/bind to global 1 \(weston_screenshooter\) refused: it is a wl_shm/);
  });
});
