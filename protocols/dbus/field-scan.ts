// A quick walk over a message's header fields, skipping each value by its type without decoding it: for the framer
// (UNIX_FDS of every message) and for whoever routes or judges messages (the names and REPLY_SERIAL). Anything the
// quick walk does not handle falls back to the full reader (unmarshal.ts), which also gives the precise error.
import { DBusProtocolError } from './errors.js';
import { type FixedHeader, readFixedHeader, u32 } from './fixed-header.js';
import { HEADER_FIELDS } from './header.js';
import { FIXED_HEADER_LENGTH, HeaderField } from './message.js';
import { readHeaderFields } from './unmarshal.js';

// Tables indexed by a type code's byte, so the walk compares bytes and makes no string per field.
const code = (type: string) => type.charCodeAt(0);

/** Bytes a basic value takes and the boundary it starts on; 0 for any other type. */
const FIXED_SIZE = new Uint8Array(256);
for (const [type, size] of Object.entries({ y: 1, n: 2, q: 2, b: 4, i: 4, u: 4, h: 4, x: 8, t: 8, d: 8 })) {
  FIXED_SIZE[code(type)] = size;
}
/** The type byte each known header field must hold, by field code; 0 for codes the specification leaves free. */
const FIELD_TYPE = new Uint8Array(256);
for (const field of HEADER_FIELDS) FIELD_TYPE[field.code] = code(field.type);
const TYPE_U = code('u');
const TYPE_S = code('s');
const TYPE_O = code('o');
const TYPE_G = code('g');

/** The header fields a router or a policy looks at; absent fields are undefined. */
export interface RoutingFields {
  type: number;
  flags: number;
  serial: number;
  littleEndian: boolean;
  path?: string;
  interface?: string;
  member?: string;
  destination?: string;
  replySerial?: number;
  unixFds: number;
}

function truncatedFields(): never {
  throw new DBusProtocolError('TRUNCATED', 'a header field runs past the end of the header-field array');
}

/**
 * Walks the header fields of `message`. With `into`, it also fills in the names and REPLY_SERIAL and holds every
 * known field to the rules of the full reader (its type, once); without, it looks only for UNIX_FDS. Returns the
 * declared number of unix fds.
 */
function walkFields(message: Buffer, header: FixedHeader, into: RoutingFields | null): number {
  const end = FIXED_HEADER_LENGTH + header.fieldsLength;
  const le = header.littleEndian;
  let unixFds: number | undefined;
  let seen = 0;
  let pos = FIXED_HEADER_LENGTH;
  while (pos < end) {
    pos += -pos & 7;
    if (pos + 4 > end) truncatedFields();
    const field = message[pos] as number;
    const type = message[pos + 2] as number;
    const simpleSignature = message[pos + 1] === 1 && message[pos + 3] === 0;
    // Without `into`, only UNIX_FDS is held to the rules (the framer leaves the rest to the bus).
    const knownType = into !== null || field === HeaderField.UNIX_FDS ? (FIELD_TYPE[field] as number) : 0;
    if (knownType !== 0) {
      if (knownType !== type || (seen & (1 << field)) !== 0) return -1;
      seen |= 1 << field;
    }
    if (!simpleSignature || (into !== null && field === 0)) return -1;
    pos += 4;
    const size = FIXED_SIZE[type] as number;
    if (size !== 0) {
      pos += -pos & (size - 1);
      if (pos + size > end) truncatedFields();
      if (type === TYPE_U && (field === HeaderField.UNIX_FDS || field === HeaderField.REPLY_SERIAL)) {
        const value = u32(message, pos, le);
        if (field === HeaderField.UNIX_FDS) unixFds = value;
        else if (into !== null) into.replySerial = value;
      }
      pos += size;
    } else if (type === TYPE_S || type === TYPE_O) {
      pos += -pos & 3;
      if (pos + 4 > end) truncatedFields();
      const length = u32(message, pos, le);
      const start = pos + 4;
      pos = start + length + 1;
      if (into !== null && knownType !== 0) {
        if (pos > end) truncatedFields();
        const text = asciiText(message, start, start + length, field);
        if (text === undefined) return -1;
        if (field === HeaderField.PATH) into.path = text;
        else if (field === HeaderField.INTERFACE) into.interface = text;
        else if (field === HeaderField.MEMBER) into.member = text;
        else if (field === HeaderField.DESTINATION) into.destination = text;
      }
    } else if (type === TYPE_G) {
      if (pos + 1 > end) truncatedFields();
      pos += 1 + (message[pos] as number) + 1;
    } else {
      return -1;
    }
  }
  if (pos !== end) truncatedFields();
  return unixFds ?? 0;
}

/**
 * The last text read for each header field code. A connection's messages repeat their names, and comparing bytes
 * with a string already made costs a fraction of making a new one (a third of reading a call's fields). Holding
 * four short strings changes no result: a match is the same text.
 */
const lastText: (string | undefined)[] = [];

/** The string at [start, end) with its NUL terminator, when it is plain ASCII; undefined for anything else. */
function asciiText(message: Buffer, start: number, end: number, code: number): string | undefined {
  if (message[end] !== 0) return undefined;
  const last = lastText[code];
  if (last !== undefined && last.length === end - start) {
    let i = start;
    while (i < end && message[i] === last.charCodeAt(i - start)) i++;
    // The last text is plain ASCII without NUL: the same bytes are too.
    if (i === end) return last;
  }
  for (let i = start; i < end; i++) {
    const byte = message[i] as number;
    if (byte === 0 || byte > 0x7f) return undefined;
  }
  const text = message.toString('latin1', start, end);
  lastText[code] = text;
  return text;
}

/** How many unix fds a message declares (its UNIX_FDS header field; 0 when absent). */
export function declaredUnixFds(message: Buffer, header: FixedHeader): number {
  const unixFds = walkFields(message, header, null);
  return unixFds >= 0 ? unixFds : ((readHeaderFields(message, header).unixFds as number | undefined) ?? 0);
}

/**
 * The fields a router or a policy needs from one whole message (as the framer cuts it), read the way the full reader
 * reads them (a known field of the wrong type, or twice, is an error), without decoding the body. Names are not
 * checked against their syntax: a bus refuses a message with a bad one.
 */
export function readRoutingFields(message: Buffer): RoutingFields {
  if (message.length < FIXED_HEADER_LENGTH) {
    throw new DBusProtocolError('TRUNCATED', `a message needs at least 16 bytes, got ${message.length}`);
  }
  const header = readFixedHeader(message, 0);
  if (message.length < header.length) {
    throw new DBusProtocolError(
      'TRUNCATED',
      `message declares ${header.length} bytes, got ${message.length}`,
    );
  }
  const fields: RoutingFields = {
    type: header.type,
    flags: header.flags,
    serial: header.serial,
    littleEndian: header.littleEndian,
    unixFds: 0,
  };
  const unixFds = walkFields(message, header, fields);
  if (unixFds >= 0) {
    fields.unixFds = unixFds;
    return fields;
  }
  const all = readHeaderFields(message, header);
  return {
    ...fields,
    path: all.path as string | undefined,
    interface: all.interface as string | undefined,
    member: all.member as string | undefined,
    destination: all.destination as string | undefined,
    replySerial: all.replySerial as number | undefined,
    unixFds: (all.unixFds as number | undefined) ?? 0,
  };
}
