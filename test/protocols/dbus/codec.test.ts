import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type DBusMessage,
  type DBusMessageInit,
  type DBusValue,
  type Endianness,
  marshal,
  unmarshal,
  variant,
} from '../../../protocols/dbus/index.js';
import { messageArb } from './arbitraries.js';
import { nativeMarshal, nativeUnmarshal } from './native-oracle.js';

const ENDIANNESSES: Endianness[] = ['l', 'B'];

function call(signature: string, body: DBusValue[], extra: Partial<DBusMessageInit> = {}): DBusMessageInit {
  return { type: 1, flags: 0, serial: 1, path: '/', member: 'M', signature, body, ...extra };
}

function nestedVariants(levels: number): DBusValue {
  let value: DBusValue = variant('y', 7);
  for (let i = 1; i < levels; i++) value = variant('v', value);
  return value;
}

describe('marshal and unmarshal', () => {
  it('writes the documented bytes for a small big-endian call', () => {
    const bytes = marshal(call('u', [0x01020304]), 'B');
    expect(bytes.toString('hex')).toBe(
      [
        '42010001', // 'B', METHOD_CALL, flags, version 1
        '00000004', // body length
        '00000001', // serial
        '00000027', // header-field array length (39)
        '01016f00',
        '00000001',
        '2f00',
        '000000000000', // PATH "/" and padding to 8
        '03017300',
        '00000001',
        '4d00',
        '000000000000', // MEMBER "M" and padding to 8
        '08016700',
        '017500', // SIGNATURE "u"
        '00', // header padding to 8
        '01020304', // body
      ].join(''),
    );
    expect(unmarshal(bytes)).toEqual({ ...call('u', [0x01020304]), unixFds: 0 });
  });

  it('round-trips random messages in both byte orders, and re-encodes them to the same bytes', () => {
    fc.assert(
      fc.property(messageArb(), (message) => {
        for (const endianness of ENDIANNESSES) {
          const bytes = marshal(message, endianness);
          const decoded = unmarshal(bytes);
          expect(decoded).toStrictEqual(message);
          expect(marshal(decoded, endianness)).toEqual(bytes);
        }
      }),
      { seed: 11, numRuns: 400 },
    );
  });

  it('encodes empty arrays with the padding of their element type', () => {
    // u32 length 0 at offset 0, then padding to 8 for the (absent) struct elements, then the byte.
    const bytes = marshal(call('a(y)y', [[], 9]));
    const body = bytes.subarray(bytes.length - 9);
    expect(body.toString('hex')).toBe('000000000000000009');
    expect(unmarshal(bytes).body).toEqual([[], 9]);
    expect(unmarshal(marshal(call('aty', [[], 9]), 'B')).body).toEqual([[], 9]);
  });

  it('carries every double, including NaN, infinities and -0', () => {
    const values = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, Number.MIN_VALUE];
    for (const endianness of ENDIANNESSES) {
      const [decoded] = unmarshal(marshal(call('ad', [values]), endianness)).body;
      expect(decoded).toStrictEqual(values);
    }
  });

  it('nests variants 64 deep and no deeper, in both directions', () => {
    for (const endianness of ENDIANNESSES) {
      const deepest = marshal(call('v', [nestedVariants(64)]), endianness);
      expect(unmarshal(deepest).body).toEqual([nestedVariants(64)]);
      expect(() => marshal(call('v', [nestedVariants(65)]), endianness)).toThrow(
        expect.objectContaining({ code: 'NESTING_TOO_DEEP' }),
      );
    }
  });

  it('counts containers inside a variant towards the total depth', () => {
    // A variant holding 32 arrays of a 31-deep struct nest: 1 + 32 + 31 = 64 containers around the byte.
    const signature = `${'a'.repeat(32)}${'('.repeat(31)}y${')'.repeat(31)}`;
    expect(() => marshal(call('v', [variant(signature, [])]))).not.toThrow();
    const deeper = `${'a'.repeat(32)}${'('.repeat(32)}y${')'.repeat(32)}`;
    expect(() => marshal(call('v', [variant(deeper, [])]))).toThrow(
      expect.objectContaining({ code: 'NESTING_TOO_DEEP' }),
    );
    expect(() => marshal(call('a{sv}', [[['k', variant(signature, [])]]]))).toThrow(
      expect.objectContaining({ code: 'NESTING_TOO_DEEP' }),
    );
  });

  it('writes header fields as each message type requires', () => {
    const decoded = unmarshal(
      marshal({
        type: 3,
        flags: 1,
        serial: 9,
        errorName: 'org.example.Error.Failed',
        replySerial: 8,
        destination: ':1.7',
      }),
    );
    expect(decoded).toStrictEqual({
      type: 3,
      flags: 1,
      serial: 9,
      errorName: 'org.example.Error.Failed',
      replySerial: 8,
      destination: ':1.7',
      signature: '',
      unixFds: 0,
      body: [],
    });
    // Unknown message types are carried, with no required fields.
    expect(unmarshal(marshal({ type: 77, flags: 0, serial: 1 })).type).toBe(77);
  });
});

describe('against dbus-native (an independent marshaller)', () => {
  it('writes byte-identical little-endian messages and parses what dbus-native writes', () => {
    fc.assert(
      fc.property(messageArb({ finiteDoubles: true }), (message) => {
        const ours = marshal(message, 'l');
        const theirs = nativeMarshal(message);
        expect(ours.toString('hex')).toBe(theirs.toString('hex'));
        expect(unmarshal(theirs)).toStrictEqual(message);
      }),
      { seed: 5, numRuns: 400 },
    );
  });

  it('is parsed by dbus-native in both byte orders', () => {
    fc.assert(
      fc.property(messageArb({ finiteDoubles: true }), (message) => {
        for (const endianness of ENDIANNESSES) {
          expect(nativeUnmarshal(marshal(message, endianness))).toStrictEqual(message);
        }
      }),
      { seed: 6, numRuns: 400 },
    );
  });

  it('agrees on a typical method call with a dict of variants and fds', () => {
    const message: DBusMessage = {
      type: 1,
      flags: 0,
      serial: 42,
      path: '/org/freedesktop/portal/desktop',
      interface: 'org.freedesktop.portal.OpenURI',
      member: 'OpenFile',
      destination: 'org.freedesktop.portal.Desktop',
      signature: 'sha{sv}',
      unixFds: 1,
      body: [
        '',
        0,
        [
          ['writable', variant('b', true)],
          ['handle_token', variant('s', 'abc')],
          ['size', variant('t', 2n ** 40n)],
        ],
      ],
    };
    expect(marshal(message)).toEqual(nativeMarshal(message));
    expect(nativeUnmarshal(marshal(message, 'B'))).toStrictEqual(message);
  });
});

describe('encoding refuses values that do not fit their type', () => {
  it.each<[string, DBusValue, string]>([
    ['y', 256, 'BAD_VALUE'],
    ['y', -1, 'BAD_VALUE'],
    ['y', 1.5, 'BAD_VALUE'],
    ['b', 1, 'BAD_VALUE'],
    ['n', 0x8000, 'BAD_VALUE'],
    ['q', -1, 'BAD_VALUE'],
    ['i', 2 ** 31, 'BAD_VALUE'],
    ['u', 2 ** 32, 'BAD_VALUE'],
    ['x', 1, 'BAD_VALUE'],
    ['x', 2n ** 63n, 'BAD_VALUE'],
    ['t', -1n, 'BAD_VALUE'],
    ['t', 2n ** 64n, 'BAD_VALUE'],
    ['d', '1', 'BAD_VALUE'],
    ['s', 1, 'BAD_VALUE'],
    ['s', 'a\0b', 'BAD_STRING'],
    ['s', 'lone \uD800 surrogate', 'BAD_STRING'],
    ['o', 'relative/path', 'BAD_OBJECT_PATH'],
    ['g', 'a', 'BAD_SIGNATURE'],
    ['h', 0, 'BAD_FD_INDEX'],
    ['ai', 5, 'BAD_VALUE'],
    ['ai', [1, 'x'], 'BAD_VALUE'],
    ['ay', [256], 'BAD_VALUE'],
    ['(ii)', [1], 'BAD_VALUE'],
    ['a{sv}', [['k']], 'BAD_VALUE'],
    ['v', 5, 'BAD_VALUE'],
    ['v', { signature: 'ii', value: 1 }, 'BAD_SIGNATURE'],
    ['v', { signature: 'u', value: -1 }, 'BAD_VALUE'],
  ])("'%s' with %s: %s", (signature, value, code) => {
    expect(() => marshal(call(signature, [value]))).toThrow(
      expect.objectContaining({ name: 'DBusProtocolError', code }),
    );
  });

  it.each<[Partial<DBusMessageInit>, string]>([
    [{ serial: 0 }, 'BAD_SERIAL'],
    [{ serial: 2 ** 32 }, 'BAD_SERIAL'],
    [{ type: 0 }, 'BAD_MESSAGE_TYPE'],
    [{ flags: 256 }, 'BAD_VALUE'],
    [{ path: undefined }, 'MISSING_HEADER_FIELD'],
    [{ member: undefined }, 'MISSING_HEADER_FIELD'],
    [{ type: 4 }, 'MISSING_HEADER_FIELD'], // a signal needs an interface
    [{ type: 2 }, 'MISSING_HEADER_FIELD'], // a return needs replySerial
    [{ type: 3, replySerial: 1 }, 'MISSING_HEADER_FIELD'], // an error needs errorName
    [{ path: '' }, 'BAD_OBJECT_PATH'],
    [{ member: 'a.b' }, 'BAD_NAME'],
    [{ interface: 'nodots' }, 'BAD_NAME'],
    [{ destination: ':1' }, 'BAD_NAME'],
    [{ replySerial: 0 }, 'BAD_SERIAL'],
    [{ signature: 'uu', body: [1] }, 'BAD_VALUE'],
    [{ unixFds: -1 }, 'BAD_VALUE'],
  ])('a message with %o: %s', (extra, code) => {
    expect(() => marshal(call('', [], extra))).toThrow(
      expect.objectContaining({ name: 'DBusProtocolError', code }),
    );
  });

  it('refuses an array over 64 MiB', () => {
    expect(() => marshal(call('ay', [Buffer.alloc(64 * 1024 * 1024 + 1)]))).toThrow(
      expect.objectContaining({ code: 'ARRAY_TOO_LARGE' }),
    );
  });
});
