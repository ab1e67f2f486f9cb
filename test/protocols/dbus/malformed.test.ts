import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type DBusMessageInit,
  DBusProtocolError,
  type DBusValue,
  MAX_ARRAY_LENGTH,
  marshal,
  unmarshal,
  variant,
} from '../../../protocols/dbus/index.js';
import { mutatedMessageArb } from './arbitraries.js';

// A method call on "/" for member "M": its PATH field is at 16 (code, signature "o" at 18, value at 20).
function call(signature: string, body: DBusValue[], extra: Partial<DBusMessageInit> = {}): Buffer {
  return marshal({ type: 1, flags: 0, serial: 1, path: '/', member: 'M', signature, body, ...extra });
}

function bodyOffset(bytes: Buffer): number {
  const fieldsLength = bytes.readUInt32LE(12);
  return 16 + fieldsLength + (-fieldsLength & 7);
}

/** The message with its body bytes replaced (and the body length patched to match). */
function withBody(message: Buffer, body: Buffer): Buffer {
  const header = Buffer.from(message.subarray(0, bodyOffset(message)));
  header.writeUInt32LE(body.length, 4);
  return Buffer.concat([header, body]);
}

/** The message with one body byte changed. */
function patchBody(message: Buffer, offset: number, byte: number): Buffer {
  const bytes = Buffer.from(message);
  bytes[bodyOffset(bytes) + offset] = byte;
  return bytes;
}

function expectCode(bytes: Buffer, code: string): void {
  expect(() => unmarshal(bytes)).toThrow(expect.objectContaining({ name: 'DBusProtocolError', code }));
}

describe('unmarshal rejects malformed messages', () => {
  it('non-zero padding: in the body, between header fields, and before the body', () => {
    expectCode(patchBody(call('yt', [1, 2n]), 3, 1), 'BAD_PADDING'); // 7 bytes of padding after the byte
    expectCode(patchBody(call('a(y)', [[]]), 5, 1), 'BAD_PADDING'); // padding of an empty struct array
    const bytes = call('', []);
    bytes[26] = 1; // after PATH's "/" NUL (at 25), padding up to MEMBER at 32
    expectCode(bytes, 'BAD_PADDING');
    const beforeBody = call('y', [1]);
    beforeBody[bodyOffset(beforeBody) - 1] = 1; // SIGNATURE "y" ends at 55; 56 is the body
    expectCode(beforeBody, 'BAD_PADDING');
  });

  it('lengths that run past the end', () => {
    const text = call('s', ['abc']);
    text.writeUInt32LE(1000, bodyOffset(text));
    expectCode(text, 'TRUNCATED');
    const array = call('ai', [[1, 2]]);
    array.writeUInt32LE(12, bodyOffset(array));
    expectCode(array, 'TRUNCATED');
    const pathLength = call('', []);
    pathLength.writeUInt32LE(0xffffffff, 20);
    expectCode(pathLength, 'TRUNCATED');
    expectCode(call('u', [1]).subarray(0, -1), 'TRUNCATED');
    expectCode(call('', []).subarray(0, 15), 'TRUNCATED');
    const fields = call('', []);
    fields.writeUInt32LE(fields.readUInt32LE(12) + 8, 12); // the field array claims 8 bytes more than sent
    expectCode(fields, 'TRUNCATED');
  });

  it('elements that overrun their array', () => {
    const bytes = call('ai', [[1, 2]]);
    bytes.writeUInt32LE(6, bodyOffset(bytes));
    expectCode(bytes, 'BAD_ARRAY_LENGTH');
  });

  it('strings that are not valid UTF-8, hold a NUL, or lack the terminator', () => {
    const base = call('s', ['abc']); // length at body 0, "abc" at 4..6, NUL at 7
    expectCode(patchBody(patchBody(base, 4, 0xff), 5, 0xfe), 'BAD_STRING');
    expectCode(patchBody(patchBody(base, 4, 0xc0), 5, 0x80), 'BAD_STRING'); // overlong NUL
    expectCode(patchBody(patchBody(patchBody(base, 4, 0xed), 5, 0xa0), 6, 0x80), 'BAD_STRING'); // a surrogate
    expectCode(patchBody(base, 5, 0x80), 'BAD_STRING'); // a lone continuation byte
    expectCode(patchBody(base, 5, 0), 'BAD_STRING');
    expectCode(patchBody(base, 7, 0x41), 'BAD_STRING');
    expect(unmarshal(call('s', ['h\u00e9llo \u{1f600}'])).body).toEqual(['h\u00e9llo \u{1f600}']);
  });

  it('invalid object paths, in the body and in the PATH field', () => {
    expectCode(patchBody(call('o', ['/ab']), 6, 0x2f), 'BAD_OBJECT_PATH'); // "/a/"
    expectCode(patchBody(call('o', ['/ab']), 5, 0x2d), 'BAD_OBJECT_PATH'); // "/-b"
    const path = call('', []);
    path[24] = 0x61; // PATH "a"
    expectCode(path, 'BAD_OBJECT_PATH');
  });

  it('invalid signatures, in the SIGNATURE field and in a variant', () => {
    const field = call('u', [1]);
    field[bodyOffset(field) - 3] = 0x72; // SIGNATURE "r"
    expectCode(field, 'BAD_SIGNATURE');
    // A variant must hold exactly one complete type: "ii" is two.
    const twoTypes = withBody(
      call('v', [variant('i', 1)]),
      Buffer.from('0269690000000000010000000200', 'hex'),
    );
    expectCode(twoTypes, 'BAD_SIGNATURE');
    expectCode(patchBody(call('g', ['(i)']), 3, 0x7d), 'BAD_SIGNATURE'); // a `g` value "(i}"
  });

  it('nesting deeper than 64 containers', () => {
    // 64 variants of "v" then one of "y": the byte sits inside 65 variants.
    const body = Buffer.concat([Buffer.from('017600'.repeat(64), 'hex'), Buffer.from('01790007', 'hex')]);
    expectCode(withBody(call('v', [variant('y', 7)]), body), 'NESTING_TOO_DEEP');
    expect(() => unmarshal(withBody(call('v', [variant('y', 7)]), body.subarray(3)))).not.toThrow();
  });

  it('an array over 64 MiB, without needing its bytes', () => {
    const bytes = call('ay', [Buffer.alloc(4)]);
    bytes.writeUInt32LE(MAX_ARRAY_LENGTH + 1, bodyOffset(bytes));
    expectCode(bytes, 'ARRAY_TOO_LARGE');
  });

  it('accepts an array of exactly 64 MiB', () => {
    const body = Buffer.alloc(4 + MAX_ARRAY_LENGTH);
    body.writeUInt32LE(MAX_ARRAY_LENGTH, 0);
    const [array] = unmarshal(withBody(call('ay', [Buffer.alloc(0)]), body)).body;
    expect((array as Buffer).length).toBe(MAX_ARRAY_LENGTH);
  });

  it('booleans other than 0 and 1', () => {
    expectCode(patchBody(call('b', [true]), 0, 2), 'BAD_BOOLEAN');
    expectCode(patchBody(call('b', [false]), 3, 1), 'BAD_BOOLEAN');
  });

  it('fd indexes beyond the declared UNIX_FDS', () => {
    expectCode(patchBody(call('h', [0], { unixFds: 1 }), 0, 1), 'BAD_FD_INDEX');
  });

  it('missing required header fields', () => {
    const methodReturn = marshal({ type: 2, flags: 0, serial: 2, replySerial: 1 });
    for (const type of [1, 3, 4]) {
      const bytes = Buffer.from(methodReturn);
      bytes[1] = type;
      expectCode(bytes, 'MISSING_HEADER_FIELD');
    }
    const methodCall = call('', []);
    methodCall[1] = 4; // a signal needs an interface too
    expectCode(methodCall, 'MISSING_HEADER_FIELD');
  });

  it('header fields of the wrong type, repeated, with code 0, or with invalid names', () => {
    const wrongType = call('', []);
    wrongType[18] = 0x73; // PATH as "s"
    expectCode(wrongType, 'BAD_HEADER_FIELD');
    // A method return whose only field, REPLY_SERIAL (8 bytes), appears twice.
    const single = marshal({ type: 2, flags: 0, serial: 2, replySerial: 1 });
    const twice = Buffer.concat([single.subarray(0, 24), single.subarray(16, 24)]);
    twice.writeUInt32LE(16, 12);
    expectCode(twice, 'BAD_HEADER_FIELD');
    const zero = Buffer.from(single);
    zero[16] = 0;
    expectCode(zero, 'BAD_HEADER_FIELD');
    const replySerialZero = Buffer.from(single);
    replySerialZero.writeUInt32LE(0, 20);
    expectCode(replySerialZero, 'BAD_SERIAL');
    const member = call('', []);
    member[40] = 0x2e; // MEMBER "."
    expectCode(member, 'BAD_NAME');
  });

  it('ignores header fields it does not know, after checking them', () => {
    const bytes = call('', [], { destination: 'org.example.App' });
    const destination = bytes.indexOf(Buffer.from([6, 1, 0x73, 0]));
    bytes[destination] = 200;
    const decoded = unmarshal(bytes);
    expect(decoded.destination).toBeUndefined();
    expect(decoded.member).toBe('M');
  });

  it('fixed-header errors: byte order, version, type, serial, sizes', () => {
    const base = call('', []);
    const patched = (offset: number, byte: number) => {
      const bytes = Buffer.from(base);
      bytes[offset] = byte;
      return bytes;
    };
    expectCode(patched(0, 0x62), 'BAD_ENDIANNESS');
    expectCode(patched(3, 2), 'BAD_VERSION');
    expectCode(patched(1, 0), 'BAD_MESSAGE_TYPE');
    const serial = Buffer.from(base);
    serial.writeUInt32LE(0, 8);
    expectCode(serial, 'BAD_SERIAL');
    const huge = Buffer.from(base);
    huge.writeUInt32LE(128 * 1024 * 1024, 4);
    expectCode(huge, 'MESSAGE_TOO_LARGE');
    const fields = Buffer.from(base);
    fields.writeUInt32LE(MAX_ARRAY_LENGTH + 1, 12);
    expectCode(fields, 'ARRAY_TOO_LARGE');
  });

  it('bytes after the message, or a body the signature does not account for', () => {
    expectCode(Buffer.concat([call('', []), Buffer.from([0])]), 'TRAILING_BYTES');
    expectCode(withBody(call('', []), Buffer.from([1, 2, 3, 4])), 'BAD_BODY_LENGTH');
    expectCode(withBody(call('y', [1]), Buffer.from([1, 0])), 'BAD_BODY_LENGTH');
  });

  it('random mutations of valid messages either decode or throw DBusProtocolError, never anything else', () => {
    let rejected = 0;
    fc.assert(
      fc.property(mutatedMessageArb(), (bytes) => {
        try {
          unmarshal(bytes);
        } catch (error) {
          if (!(error instanceof DBusProtocolError)) throw error;
          rejected++;
        }
      }),
      { seed: 21, numRuns: 3000 },
    );
    // The mutations do break messages (most of them), so the property is not vacuous.
    expect(rejected).toBeGreaterThan(1000);
  });
});
