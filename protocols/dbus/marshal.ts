// Encoder: a message (or a body) and its JS values to wire bytes, in either byte order.
import { DBusProtocolError } from './errors.js';
import { checkHeaderFields, HEADER_FIELDS } from './header.js';
import {
  BIG_ENDIAN,
  type DBusMessageInit,
  type DBusValue,
  type DBusVariant,
  type Endianness,
  FIXED_HEADER_LENGTH,
  LITTLE_ENDIAN,
  MAX_ARRAY_LENGTH,
  MAX_MESSAGE_LENGTH,
  PROTOCOL_VERSION,
} from './message.js';
import { isValidObjectPath } from './names.js';
import { checkTotalDepth, parseSignature, parseSingleType, type TypeNode } from './signature.js';
import { MessageWriter } from './writer.js';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
// A lone UTF-16 surrogate has no UTF-8 form: Buffer would silently write U+FFFD instead.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function describe(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value instanceof Uint8Array) return `a byte array of ${value.length}`;
  return typeof value === 'object' ? 'an object' : String(value);
}

function badValue(code: string, expected: string, value: unknown): never {
  throw new DBusProtocolError('BAD_VALUE', `'${code}' needs ${expected}, got ${describe(value)}`);
}

function integer(code: string, value: DBusValue, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    badValue(code, `an integer in [${min}, ${max}]`, value);
  }
  return value;
}

function bigInteger(code: string, value: DBusValue, min: bigint, max: bigint): bigint {
  if (typeof value !== 'bigint' || value < min || value > max)
    badValue(code, `a bigint in [${min}, ${max}]`, value);
  return value;
}

function text(code: string, value: DBusValue): string {
  if (typeof value !== 'string') badValue(code, 'a string', value);
  if (value.includes('\0')) throw new DBusProtocolError('BAD_STRING', 'a string must not contain NUL');
  if (LONE_SURROGATE.test(value)) throw new DBusProtocolError('BAD_STRING', 'a string must be valid Unicode');
  return value;
}

function isVariant(value: DBusValue): value is DBusVariant {
  return (
    typeof value === 'object' &&
    !Array.isArray(value) &&
    !(value instanceof Uint8Array) &&
    typeof (value as Partial<DBusVariant>).signature === 'string' &&
    'value' in value
  );
}

function tooLarge(length: number): never {
  throw new DBusProtocolError('ARRAY_TOO_LARGE', `array of ${length} bytes exceeds ${MAX_ARRAY_LENGTH}`);
}

function tuple(code: string, value: DBusValue, length: number): DBusValue[] {
  if (!Array.isArray(value) || value.length !== length) badValue(code, `an array of ${length} values`, value);
  return value;
}

/** Marshalling state: the output and the number of fds the message declares (the bound for `h` indexes). */
class ValueWriter {
  constructor(
    readonly out: MessageWriter,
    private readonly unixFds: number,
  ) {}

  /** Writes `value` of type `node`, which sits inside `containers` containers. */
  write(node: TypeNode, value: DBusValue, containers: number): void {
    const { out } = this;
    switch (node.code) {
      case 'y':
        out.uint8(integer('y', value, 0, 0xff));
        break;
      case 'b':
        if (typeof value !== 'boolean') badValue('b', 'a boolean', value);
        out.uint32(value ? 1 : 0);
        break;
      case 'n':
        out.int16(integer('n', value, -0x8000, 0x7fff));
        break;
      case 'q':
        out.uint16(integer('q', value, 0, 0xffff));
        break;
      case 'i':
        out.int32(integer('i', value, -0x80000000, 0x7fffffff));
        break;
      case 'u':
        out.uint32(integer('u', value, 0, 0xffffffff));
        break;
      case 'h': {
        const index = integer('h', value, 0, 0xffffffff);
        if (index >= this.unixFds) {
          throw new DBusProtocolError(
            'BAD_FD_INDEX',
            `fd index ${index} but the message declares ${this.unixFds} fds`,
          );
        }
        out.uint32(index);
        break;
      }
      case 'x':
        out.int64(bigInteger('x', value, INT64_MIN, INT64_MAX));
        break;
      case 't':
        out.uint64(bigInteger('t', value, 0n, UINT64_MAX));
        break;
      case 'd':
        if (typeof value !== 'number') badValue('d', 'a number', value);
        out.double(value);
        break;
      case 's':
        out.string(text('s', value));
        break;
      case 'o': {
        const path = text('o', value);
        if (!isValidObjectPath(path)) {
          throw new DBusProtocolError(
            'BAD_OBJECT_PATH',
            `${JSON.stringify(path)} is not a valid object path`,
          );
        }
        out.string(path);
        break;
      }
      case 'g': {
        const signature = text('g', value);
        parseSignature(signature);
        out.signature(signature);
        break;
      }
      case 'a':
        this.array(node.element, value, containers);
        break;
      case '(': {
        const fields = tuple('(', value, node.fields.length);
        out.align(8);
        node.fields.forEach((field, i) => {
          this.write(field, fields[i] as DBusValue, containers + 1);
        });
        break;
      }
      case '{': {
        const [key, entryValue] = tuple('{', value, 2) as [DBusValue, DBusValue];
        out.align(8);
        this.write(node.key, key, containers + 1);
        this.write(node.value, entryValue, containers + 1);
        break;
      }
      case 'v': {
        if (!isVariant(value)) badValue('v', 'a variant { signature, value }', value);
        const inner = parseSingleType(value.signature);
        checkTotalDepth(inner, containers + 1);
        out.signature(value.signature);
        this.write(inner, value.value, containers + 1);
        break;
      }
    }
  }

  private array(element: TypeNode, value: DBusValue, containers: number): void {
    const { out } = this;
    const lengthAt = out.reserveUint32();
    // The padding to the first element is present even when there is none, and is not counted in the length.
    out.align(element.alignment);
    const start = out.position;
    if (element.code === 'y' && value instanceof Uint8Array) {
      if (value.length > MAX_ARRAY_LENGTH) tooLarge(value.length);
      out.bytes(value);
    } else if (Array.isArray(value)) {
      for (const item of value) this.write(element, item, containers + 1);
    } else {
      badValue('a', 'an array', value);
    }
    const length = out.position - start;
    if (length > MAX_ARRAY_LENGTH) tooLarge(length);
    out.patchUint32(lengthAt, length);
  }

  /** Writes a body: one value per complete type of `signature`. */
  body(signature: string, values: readonly DBusValue[]): void {
    const types = parseSignature(signature);
    if (types.length !== values.length) {
      throw new DBusProtocolError(
        'BAD_VALUE',
        `signature "${signature}" has ${types.length} types but the body has ${values.length} values`,
      );
    }
    types.forEach((node, i) => {
      checkTotalDepth(node, 0);
      this.write(node, values[i] as DBusValue, 0);
    });
  }
}

function checkByte(what: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min || value > 0xff) {
    throw new DBusProtocolError(
      what === 'type' ? 'BAD_MESSAGE_TYPE' : 'BAD_VALUE',
      `message ${what} must be an integer in [${min}, 255], got ${value}`,
    );
  }
}

function checkUint32(code: 'BAD_SERIAL' | 'BAD_VALUE', what: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min || value > 0xffffffff) {
    throw new DBusProtocolError(code, `${what} must be an integer in [${min}, 4294967295], got ${value}`);
  }
}

/**
 * Marshals a message. Header fields are written in code order; SIGNATURE only when the body has one and
 * UNIX_FDS only when non-zero. Throws DBusProtocolError for anything the receiver would have to reject.
 */
export function marshal(init: DBusMessageInit, endianness: Endianness = 'l'): Buffer {
  const message = {
    ...init,
    signature: init.signature ?? '',
    unixFds: init.unixFds ?? 0,
    body: init.body ?? [],
  };
  checkByte('type', message.type, 1);
  checkByte('flags', message.flags, 0);
  checkUint32('BAD_SERIAL', 'serial', message.serial, 1);
  checkUint32('BAD_VALUE', 'unixFds', message.unixFds, 0);
  checkHeaderFields(message);

  const out = new MessageWriter(endianness === 'l');
  out.uint8(endianness === 'l' ? LITTLE_ENDIAN : BIG_ENDIAN);
  out.uint8(message.type);
  out.uint8(message.flags);
  out.uint8(PROTOCOL_VERSION);
  const bodyLengthAt = out.reserveUint32();
  out.uint32(message.serial);
  const fieldsLengthAt = out.reserveUint32();
  const values = new ValueWriter(out, message.unixFds);
  for (const field of HEADER_FIELDS) {
    const value = message[field.name];
    const empty = (field.name === 'signature' && value === '') || (field.name === 'unixFds' && value === 0);
    if (value === undefined || empty) continue;
    out.align(8);
    out.uint8(field.code);
    out.signature(field.type);
    values.write(parseSingleType(field.type), value, 3);
  }
  out.patchUint32(fieldsLengthAt, out.position - FIXED_HEADER_LENGTH);
  out.align(8);
  const bodyStart = out.position;
  values.body(message.signature, message.body);
  if (out.position > MAX_MESSAGE_LENGTH) {
    throw new DBusProtocolError(
      'MESSAGE_TOO_LARGE',
      `message of ${out.position} bytes exceeds ${MAX_MESSAGE_LENGTH}`,
    );
  }
  out.patchUint32(bodyLengthAt, out.position - bodyStart);
  return out.finish();
}
