// Decoder: one complete message's bytes to a DBusMessage, validating everything the specification requires.
import { DBusProtocolError } from './errors.js';
import { type FixedHeader, readFixedHeader } from './fixed-header.js';
import { checkHeaderFields, HEADER_FIELD_BY_CODE, type HeaderFieldName } from './header.js';
import { type DBusMessage, type DBusValue, FIXED_HEADER_LENGTH, MAX_ARRAY_LENGTH } from './message.js';
import { isValidObjectPath } from './names.js';
import { MessageReader } from './reader.js';
import { checkTotalDepth, parseSignature, parseSingleType, type TypeNode } from './signature.js';

/** Unmarshalling state: the input and the number of fds the message declares (the bound for `h` indexes). */
class ValueReader {
  constructor(
    readonly input: MessageReader,
    private readonly unixFds: number,
  ) {}

  /** Reads a value of type `node`, which sits inside `containers` containers. */
  read(node: TypeNode, containers: number): DBusValue {
    const { input } = this;
    switch (node.code) {
      case 'y':
        return input.uint8();
      case 'b': {
        const value = input.uint32();
        if (value > 1)
          throw new DBusProtocolError('BAD_BOOLEAN', `boolean holds ${value} (only 0 and 1 are valid)`);
        return value === 1;
      }
      case 'n':
        return input.int16();
      case 'q':
        return input.uint16();
      case 'i':
        return input.int32();
      case 'u':
        return input.uint32();
      case 'h': {
        const index = input.uint32();
        if (index >= this.unixFds) {
          throw new DBusProtocolError(
            'BAD_FD_INDEX',
            `fd index ${index} but the message declares ${this.unixFds} fds`,
          );
        }
        return index;
      }
      case 'x':
        return input.int64();
      case 't':
        return input.uint64();
      case 'd':
        return input.double();
      case 's':
        return input.string();
      case 'o': {
        const path = input.string();
        if (!isValidObjectPath(path)) {
          throw new DBusProtocolError(
            'BAD_OBJECT_PATH',
            `${JSON.stringify(path)} is not a valid object path`,
          );
        }
        return path;
      }
      case 'g': {
        const signature = input.signature();
        parseSignature(signature);
        return signature;
      }
      case 'a':
        return this.array(node.element, containers);
      case '(':
        input.align(8);
        return node.fields.map((field) => this.read(field, containers + 1));
      case '{': {
        input.align(8);
        const key = this.read(node.key, containers + 1);
        return [key, this.read(node.value, containers + 1)];
      }
      case 'v': {
        const signature = input.signature();
        const inner = parseSingleType(signature);
        checkTotalDepth(inner, containers + 1);
        return { signature, value: this.read(inner, containers + 1) };
      }
    }
  }

  private array(element: TypeNode, containers: number): DBusValue {
    const { input } = this;
    const length = input.uint32();
    if (length > MAX_ARRAY_LENGTH) {
      throw new DBusProtocolError('ARRAY_TOO_LARGE', `array of ${length} bytes exceeds ${MAX_ARRAY_LENGTH}`);
    }
    input.align(element.alignment);
    const end = input.pos + length;
    if (end > input.end) {
      throw new DBusProtocolError(
        'TRUNCATED',
        `array of ${length} bytes at offset ${input.pos} runs past the end`,
      );
    }
    if (element.code === 'y') return input.bytes(length);
    const items: DBusValue[] = [];
    while (input.pos < end) items.push(this.read(element, containers + 1));
    if (input.pos !== end) {
      throw new DBusProtocolError(
        'BAD_ARRAY_LENGTH',
        `array elements overrun its declared length of ${length}`,
      );
    }
    return items;
  }
}

type KnownFields = Partial<Record<HeaderFieldName, string | number>>;

/**
 * Reads the header-field array of a message whose fixed header is `header`: known fields by name, unknown
 * fields validated and skipped. Rejects field code 0, a known field of the wrong type, and repeated fields.
 */
export function readHeaderFields(bytes: Buffer, header: FixedHeader): KnownFields {
  const end = FIXED_HEADER_LENGTH + header.fieldsLength;
  const input = new MessageReader(bytes, header.littleEndian, FIXED_HEADER_LENGTH, end);
  // The fds are not known until UNIX_FDS is read, and no known field is an `h`.
  const values = new ValueReader(input, Number.POSITIVE_INFINITY);
  const fields: KnownFields = {};
  while (input.pos < end) {
    input.align(8);
    const code = input.uint8();
    if (code === 0) throw new DBusProtocolError('BAD_HEADER_FIELD', 'header field code 0 is invalid');
    const signature = input.signature();
    const type = parseSingleType(signature);
    // A field's value sits in a variant, in a struct, in the header array.
    checkTotalDepth(type, 3);
    const spec = HEADER_FIELD_BY_CODE[code];
    if (spec === undefined) {
      values.read(type, 3);
      continue;
    }
    if (signature !== spec.type) {
      throw new DBusProtocolError(
        'BAD_HEADER_FIELD',
        `header field ${spec.name} has type "${signature}" instead of "${spec.type}"`,
      );
    }
    if (fields[spec.name] !== undefined) {
      throw new DBusProtocolError('BAD_HEADER_FIELD', `header field ${spec.name} appears twice`);
    }
    fields[spec.name] = values.read(type, 3) as string | number;
  }
  return fields;
}

/** Decodes exactly one complete message. Throws DBusProtocolError, and nothing else, for any malformed input. */
export function unmarshal(bytes: Buffer): DBusMessage {
  if (bytes.length < FIXED_HEADER_LENGTH) {
    throw new DBusProtocolError('TRUNCATED', `a message needs at least 16 bytes, got ${bytes.length}`);
  }
  const header = readFixedHeader(bytes, 0);
  if (bytes.length < header.length) {
    throw new DBusProtocolError('TRUNCATED', `message declares ${header.length} bytes, got ${bytes.length}`);
  }
  if (bytes.length > header.length) {
    throw new DBusProtocolError(
      'TRAILING_BYTES',
      `message declares ${header.length} bytes, got ${bytes.length}`,
    );
  }
  if (header.type === 0) throw new DBusProtocolError('BAD_MESSAGE_TYPE', 'message type 0 is invalid');
  if (header.serial === 0) throw new DBusProtocolError('BAD_SERIAL', 'message serial must not be 0');

  const fields = readHeaderFields(bytes, header);
  const signature = (fields.signature as string | undefined) ?? '';
  const unixFds = (fields.unixFds as number | undefined) ?? 0;
  // readHeaderFields checked each known field's type, so the spread gives each name its declared type.
  const message: DBusMessage = {
    type: header.type,
    flags: header.flags,
    serial: header.serial,
    ...(fields as Partial<DBusMessage>),
    signature,
    unixFds,
    body: [],
  };
  checkHeaderFields(message);

  const input = new MessageReader(bytes, header.littleEndian, FIXED_HEADER_LENGTH + header.fieldsLength);
  input.align(8);
  const values = new ValueReader(input, unixFds);
  for (const type of parseSignature(signature)) {
    checkTotalDepth(type, 0);
    message.body.push(values.read(type, 0));
  }
  if (input.pos !== header.length) {
    throw new DBusProtocolError(
      'BAD_BODY_LENGTH',
      `body of ${header.bodyLength} bytes does not match signature "${signature}" (${input.pos - header.bodyOffset} bytes)`,
    );
  }
  return message;
}
