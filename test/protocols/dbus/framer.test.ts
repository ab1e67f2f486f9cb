import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DBusFramer,
  type DBusValue,
  type FramedMessage,
  MAX_ARRAY_LENGTH,
  marshal,
  unmarshal,
  variant,
} from '../../../protocols/dbus/index.js';
import { messageArb, splitAt } from './arbitraries.js';

function frameAll(framer: DBusFramer, chunks: Buffer[]): FramedMessage[] {
  return chunks.flatMap((chunk) => framer.push(chunk));
}

/**
 * A little-endian message with exactly these header fields (code, variant), in this order. The field array
 * is marshalled as an `a(yv)` body, whose elements start 8-aligned just like the header's.
 */
function withFields(fields: [number, DBusValue][], body = Buffer.alloc(0)): Buffer {
  const carrier = marshal({
    type: 1,
    flags: 0,
    serial: 1,
    path: '/',
    member: 'M',
    signature: 'a(yv)',
    body: [fields],
  });
  const fieldsLength = carrier.readUInt32LE(carrier.length - carrier.readUInt32LE(4));
  const elements = carrier.subarray(carrier.length - fieldsLength);
  const fixed = Buffer.from('6c01000100000000010000000000000000', 'hex').subarray(0, 16);
  fixed.writeUInt32LE(body.length, 4);
  fixed.writeUInt32LE(fieldsLength, 12);
  return Buffer.concat([fixed, elements, Buffer.alloc(-fieldsLength & 7), body]);
}

const PATH: [number, DBusValue] = [1, variant('o', '/')];
const MEMBER: [number, DBusValue] = [3, variant('s', 'M')];

describe('DBusFramer', () => {
  it('frames any chunking of a stream of random messages into exactly those messages and fd counts', () => {
    const streamArb = fc.array(fc.tuple(messageArb({ depth: 2 }), fc.constantFrom<'l' | 'B'>('l', 'B')), {
      minLength: 1,
      maxLength: 12,
    });
    fc.assert(
      fc.property(streamArb, fc.array(fc.nat(), { maxLength: 30 }), (messages, offsets) => {
        const encoded = messages.map(([message, endianness]) => marshal(message, endianness));
        const framer = new DBusFramer();
        const framed = frameAll(framer, splitAt(Buffer.concat(encoded), offsets));
        expect(framed.map((message) => message.bytes)).toEqual(encoded);
        expect(framed.map((message) => message.unixFds)).toEqual(
          messages.map(([message]) => message.unixFds),
        );
        expect(framer.bufferedBytes).toBe(0);
      }),
      { seed: 31, numRuns: 300 },
    );
  });

  it('frames a stream fed one byte at a time', () => {
    const messages = [
      marshal({
        type: 1,
        flags: 0,
        serial: 1,
        path: '/',
        member: 'Hello',
        destination: 'org.freedesktop.DBus',
      }),
      marshal(
        { type: 2, flags: 0, serial: 2, replySerial: 1, signature: 'hh', body: [0, 1], unixFds: 2 },
        'B',
      ),
      marshal({
        type: 4,
        flags: 0,
        serial: 3,
        path: '/a',
        interface: 'a.b',
        member: 'C',
        signature: 's',
        body: ['x'],
      }),
    ];
    const stream = Buffer.concat(messages);
    const framer = new DBusFramer();
    const framed: FramedMessage[] = [];
    for (let i = 0; i < stream.length; i++) {
      framed.push(...framer.push(stream.subarray(i, i + 1)));
      const waiting = i + 1 - framed.reduce((sum, message) => sum + message.bytes.length, 0);
      expect(framer.bufferedBytes).toBe(waiting);
    }
    expect(framed).toEqual([
      { bytes: messages[0], unixFds: 0 },
      { bytes: messages[1], unixFds: 2 },
      { bytes: messages[2], unixFds: 0 },
    ]);
  });

  it('returns messages inside one chunk as views of it, without copying', () => {
    const one = marshal({
      type: 2,
      flags: 0,
      serial: 5,
      replySerial: 4,
      signature: 'ay',
      body: [Buffer.alloc(100, 1)],
    });
    const chunk = Buffer.concat([one, one, one.subarray(0, 10)]);
    const framer = new DBusFramer();
    const framed = framer.push(chunk);
    expect(framed).toHaveLength(2);
    framed.forEach((message, i) => {
      expect(message.bytes.buffer).toBe(chunk.buffer);
      expect(message.bytes.byteOffset).toBe(chunk.byteOffset + i * one.length);
    });
    expect(framer.bufferedBytes).toBe(10);
    // The straddling message is joined once, then the chunk's later messages are views again.
    const rest = Buffer.concat([one.subarray(10), one]);
    const [joined, view] = framer.push(rest);
    expect(joined?.bytes).toEqual(one);
    // Small buffers share Node's pool: the offset, not the ArrayBuffer alone, tells a view from a copy.
    expect(view?.bytes.buffer).toBe(rest.buffer);
    expect(view?.bytes.byteOffset).toBe(rest.byteOffset + one.length - 10);
  });

  it('returns a chunk that is one whole message as that same buffer', () => {
    const one = marshal({ type: 2, flags: 0, serial: 5, replySerial: 4, signature: 's', body: ['ping'] });
    const chunk = Buffer.from(one);
    const framer = new DBusFramer();
    const [framed, ...more] = framer.push(chunk);
    expect(more).toEqual([]);
    expect(framed?.bytes).toBe(chunk);
    expect(framer.bufferedBytes).toBe(0);
  });

  it('assembles a large message from many chunks', () => {
    const big = marshal({
      type: 2,
      flags: 0,
      serial: 5,
      replySerial: 4,
      signature: 'ay',
      body: [Buffer.alloc(1 << 20, 7)],
      unixFds: 3,
    });
    const framer = new DBusFramer();
    const framed = frameAll(
      framer,
      splitAt(
        big,
        Array.from({ length: 20 }, (_, i) => (i + 1) * 65536),
      ),
    );
    expect(framed).toHaveLength(1);
    // Buffer.equals: a deep equality walk over a megabyte is needlessly slow.
    expect(framed[0]?.bytes.equals(big)).toBe(true);
    expect(framed[0]?.unixFds).toBe(3);
  });

  it('finds UNIX_FDS behind unknown fields of any type, as unmarshal does', () => {
    const cases: [number, DBusValue][][] = [
      [PATH, MEMBER, [9, variant('u', 4)]],
      [[9, variant('u', 4)], PATH, MEMBER],
      [
        PATH,
        [100, variant('t', 1n)],
        [101, variant('y', 1)],
        [102, variant('g', 'a{sv}')],
        [9, variant('u', 4)],
        MEMBER,
      ],
      [PATH, [200, variant('a{sv}', [['k', variant('as', ['x', 'y'])]])], [9, variant('u', 4)], MEMBER],
      [PATH, [201, variant('(yv)', [1, variant('d', 1.5)])], MEMBER, [9, variant('u', 4)]],
      [PATH, MEMBER, [9, variant('u', 0)]],
    ];
    for (const fields of cases) {
      const bytes = withFields(fields);
      const expected = unmarshal(bytes).unixFds;
      expect(new DBusFramer().push(bytes)).toEqual([{ bytes, unixFds: expected }]);
    }
    expect(unmarshal(withFields(cases[3] ?? [])).unixFds).toBe(4);
  });

  it.each<[string, [number, DBusValue][]]>([
    ['UNIX_FDS twice', [PATH, MEMBER, [9, variant('u', 1)], [9, variant('u', 2)]]],
    ['UNIX_FDS as a string', [PATH, MEMBER, [9, variant('s', '1')]]],
    ['UNIX_FDS as a struct', [PATH, MEMBER, [9, variant('(u)', [1])]]],
  ])('rejects %s', (_, fields) => {
    expect(() => new DBusFramer().push(withFields(fields))).toThrow(
      expect.objectContaining({ code: 'BAD_HEADER_FIELD' }),
    );
  });

  it('rejects a header field running past the field array', () => {
    const bytes = withFields([PATH, MEMBER, [9, variant('u', 1)]]);
    bytes.writeUInt32LE(bytes.readUInt32LE(12) - 2, 12); // cuts UNIX_FDS's value short
    expect(() => new DBusFramer().push(bytes)).toThrow(expect.objectContaining({ code: 'TRUNCATED' }));
  });

  it.each<[string, (bytes: Buffer) => void, string]>([
    ['a bad byte-order flag', (bytes) => bytes.writeUInt8(0x62, 0), 'BAD_ENDIANNESS'],
    ['protocol version 2', (bytes) => bytes.writeUInt8(2, 3), 'BAD_VERSION'],
    [
      'a body making the message over 128 MiB',
      (bytes) => bytes.writeUInt32LE(128 * 1024 * 1024 - 24, 4),
      'MESSAGE_TOO_LARGE',
    ],
    [
      'a header-field array over 64 MiB',
      (bytes) => bytes.writeUInt32LE(MAX_ARRAY_LENGTH + 1, 12),
      'ARRAY_TOO_LARGE',
    ],
  ])('rejects %s from the fixed header alone, even split, and stays failed', (_, corrupt, code) => {
    const good = marshal({ type: 1, flags: 0, serial: 1, path: '/', member: 'M' });
    const bad = Buffer.from(good);
    corrupt(bad);
    const framer = new DBusFramer();
    expect(framer.push(good)).toHaveLength(1);
    expect(framer.push(bad.subarray(0, 7))).toEqual([]);
    expect(() => framer.push(bad.subarray(7, 16))).toThrow(
      expect.objectContaining({ name: 'DBusProtocolError', code }),
    );
    expect(() => framer.push(good)).toThrow(expect.objectContaining({ code }));
  });

  it('accepts a message of exactly 128 MiB by its header (and waits for it)', () => {
    const bytes = marshal({ type: 1, flags: 0, serial: 1, path: '/', member: 'M' });
    bytes.writeUInt32LE(128 * 1024 * 1024 - bytes.length, 4);
    const framer = new DBusFramer();
    expect(framer.push(bytes)).toEqual([]);
    expect(framer.bufferedBytes).toBe(bytes.length);
  });
});
