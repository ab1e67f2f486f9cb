// A quick walk over a message's header fields, skipping each value by its type without decoding it: for the framer
// (UNIX_FDS of every message) and for whoever routes or judges messages (the names and REPLY_SERIAL). Anything the
// quick walk does not handle falls back to the full reader (unmarshal.ts), which also gives the precise error.
import { DBusProtocolError } from './errors.js';
import { type FixedHeader, readFixedHeader } from './fixed-header.js';
import { HEADER_FIELD_BY_CODE } from './header.js';
import { FIXED_HEADER_LENGTH, HeaderField } from './message.js';
import { readHeaderFields } from './unmarshal.js';

// Bytes a basic value takes and the boundary it starts on.
const FIXED_SIZE: Readonly<Record<string, number>> = {
  y: 1,
  n: 2,
  q: 2,
  b: 4,
  i: 4,
  u: 4,
  h: 4,
  x: 8,
  t: 8,
  d: 8,
};

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
    const code = message[pos] as number;
    const type = String.fromCharCode(message[pos + 2] as number);
    const simpleSignature = message[pos + 1] === 1 && message[pos + 3] === 0;
    // Without `into`, only UNIX_FDS is held to the rules (the framer leaves the rest to the bus).
    const known = into !== null || code === HeaderField.UNIX_FDS ? HEADER_FIELD_BY_CODE[code] : undefined;
    if (known !== undefined) {
      if (known.type !== type || (seen & (1 << code)) !== 0) return -1;
      seen |= 1 << code;
    }
    if (!simpleSignature || (into !== null && code === 0)) return -1;
    pos += 4;
    const size = FIXED_SIZE[type];
    if (size !== undefined) {
      pos += -pos & (size - 1);
      if (pos + size > end) truncatedFields();
      if (type === 'u' && (code === HeaderField.UNIX_FDS || code === HeaderField.REPLY_SERIAL)) {
        const value = le ? message.readUInt32LE(pos) : message.readUInt32BE(pos);
        if (code === HeaderField.UNIX_FDS) unixFds = value;
        else if (into !== null) into.replySerial = value;
      }
      pos += size;
    } else if (type === 's' || type === 'o') {
      pos += -pos & 3;
      if (pos + 4 > end) truncatedFields();
      const length = le ? message.readUInt32LE(pos) : message.readUInt32BE(pos);
      const start = pos + 4;
      pos = start + length + 1;
      if (into !== null && known !== undefined) {
        if (pos > end) truncatedFields();
        const text = asciiText(message, start, start + length, code);
        if (text === undefined) return -1;
        if (code === HeaderField.PATH) into.path = text;
        else if (code === HeaderField.INTERFACE) into.interface = text;
        else if (code === HeaderField.MEMBER) into.member = text;
        else if (code === HeaderField.DESTINATION) into.destination = text;
      }
    } else if (type === 'g') {
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
