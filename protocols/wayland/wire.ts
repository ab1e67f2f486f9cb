// The Wayland wire format. A message is a header of two 32-bit words in host byte order (little-endian here): the
// object id, then `size << 16 | opcode`, where size counts the header and is a multiple of 4 between 8 and 4096
// (libwayland's buffer, hence its limit). Arguments follow, each 4-byte aligned: int, uint, fixed (24.8), object
// and typed new_id are one word; a string is its byte length including the NUL (0 = null) then the bytes, padded;
// an array is its byte length then the bytes, padded; an untyped new_id is interface string, version, id. An fd
// argument has no bytes: it takes the next fd from the connection's fd queue, in argument order.
// Pure: no sockets. Everything malformed throws WaylandWireError.
import type { ArgSpec, MessageSpec } from './spec.js';

export const HEADER_SIZE = 8;
export const MAX_MESSAGE_SIZE = 4096;
/** Ids the server allocates start here; ids below are the client's. 0 is the null object. */
export const SERVER_ID_START = 0xff000000;
/** libwayland receives at most this many fds per recvmsg (its MAX_FDS_OUT): send a peer no more in one write. */
export const MAX_FDS_PER_WAYLAND_READ = 28;

export type WireErrorCode =
  | 'BAD_SIZE'
  | 'TRUNCATED'
  | 'TRAILING_BYTES'
  | 'NULL_NOT_ALLOWED'
  | 'STRING_NOT_TERMINATED'
  | 'MISSING_FD'
  | 'TOO_BIG'
  | 'BAD_VALUE';

export class WaylandWireError extends Error {
  override name = 'WaylandWireError';
  constructor(
    readonly code: WireErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface MessageHeader {
  objectId: number;
  opcode: number;
  /** Whole message, header included. */
  size: number;
}

/** The value of an untyped new_id (wl_registry.bind): the client names the interface and version it binds. */
export interface UntypedNewId {
  interface: string;
  version: number;
  id: number;
}

export type ArgValue = number | string | null | Uint8Array | UntypedNewId;

/** The JS value of one argument: numbers for int, uint, fixed, object ids, typed new_ids and fds. */
export type ValueOf<A extends ArgSpec> = ArgSpec extends A
  ? ArgValue
  : A['type'] extends 'string'
    ? A extends { nullable: true }
      ? string | null
      : string
    : A['type'] extends 'array'
      ? Uint8Array
      : A['type'] extends 'new_id'
        ? A extends { interface: string }
          ? number
          : UntypedNewId
        : number;

/** A message's arguments by name, typed from its generated spec. */
export type MessageArgs<M extends MessageSpec> = {
  -readonly [A in M['args'][number] as A['name']]: ValueOf<A>;
};

/** The message of `list` called `name`, with its literal type when `list` is a generated table. */
export function messageNamed<const L extends readonly MessageSpec[], N extends L[number]['name']>(
  list: L,
  name: N,
): Extract<L[number], { name: N }> {
  const found = list.find((message) => message.name === name);
  if (!found) throw new RangeError(`no message '${name}'`);
  return found as Extract<L[number], { name: N }>;
}

/** How many fds a message carries (its `fd` arguments). */
export function fdCount(message: MessageSpec): number {
  let count = 0;
  for (const arg of message.args) if (arg.type === 'fd') count++;
  return count;
}

/** The little-endian u32 at `offset` (plain byte reads: no DataView to allocate per message). */
export function readUint32(data: Uint8Array, offset: number): number {
  return (
    ((data[offset] as number) |
      ((data[offset + 1] as number) << 8) |
      ((data[offset + 2] as number) << 16) |
      ((data[offset + 3] as number) << 24)) >>>
    0
  );
}

/** Throws BAD_SIZE unless `size` (from a header) is a multiple of 4 in [8, 4096]. */
export function checkMessageSize(size: number): void {
  if (size < HEADER_SIZE || size > MAX_MESSAGE_SIZE || size % 4 !== 0)
    throw new WaylandWireError(
      'BAD_SIZE',
      `message size ${size} is not a multiple of 4 in [8, ${MAX_MESSAGE_SIZE}]`,
    );
}

/** Reads and checks the header at `offset` (at least 8 bytes must be there). */
export function readHeader(data: Uint8Array, offset: number): MessageHeader {
  const word = readUint32(data, offset + 4);
  const size = word >>> 16;
  checkMessageSize(size);
  return { objectId: readUint32(data, offset), opcode: word & 0xffff, size };
}

const padded = (length: number) => (length + 3) & ~3;

/** Walks the arguments of one message; throws WaylandWireError naming the message and argument. */
class ArgReader {
  constructor(
    private readonly message: MessageSpec,
    private readonly data: Uint8Array,
    public at: number,
    private readonly end: number,
  ) {}

  fail(code: WireErrorCode, arg: ArgSpec, what: string): never {
    throw new WaylandWireError(code, `${this.message.name}: argument '${arg.name}' ${what}`);
  }

  word(arg: ArgSpec): number {
    if (this.at + 4 > this.end) this.fail('TRUNCATED', arg, 'is cut off');
    const value = readUint32(this.data, this.at);
    this.at += 4;
    return value;
  }

  id(arg: ArgSpec): number {
    const value = this.word(arg);
    if (value === 0 && !arg.nullable) this.fail('NULL_NOT_ALLOWED', arg, 'is null');
    return value;
  }

  bytes(arg: ArgSpec, length: number): Uint8Array {
    if (length > this.end - this.at) this.fail('TRUNCATED', arg, 'is cut off');
    const slice = this.data.subarray(this.at, this.at + length);
    this.at += padded(length);
    if (this.at > this.end) this.fail('TRUNCATED', arg, 'padding is cut off');
    return slice;
  }

  string(arg: ArgSpec, nullable: boolean): string | null {
    const length = this.word(arg);
    if (length === 0) {
      if (!nullable) this.fail('NULL_NOT_ALLOWED', arg, 'is null');
      return null;
    }
    const slice = this.bytes(arg, length);
    if (slice[length - 1] !== 0) this.fail('STRING_NOT_TERMINATED', arg, 'is not NUL-terminated');
    return Buffer.from(slice.buffer, slice.byteOffset, length - 1).toString('utf8');
  }
}

/**
 * Decodes the arguments of one whole message (`data[start, end)`, header included) in order. `fds` are the fds
 * this message took from the connection's queue, one per `fd` argument; null when only the other arguments matter
 * (fd arguments then decode as -1).
 */
export function decodeArgs(
  message: MessageSpec,
  data: Uint8Array,
  start: number,
  end: number,
  fds: readonly number[] | null,
): ArgValue[] {
  const reader: ArgReader = new ArgReader(message, data, start + HEADER_SIZE, end); // typed: fail() narrows
  const values: ArgValue[] = [];
  let fdIndex = 0;
  for (const arg of message.args) {
    switch (arg.type) {
      case 'int':
        values.push(reader.word(arg) | 0);
        break;
      case 'uint':
        values.push(reader.word(arg));
        break;
      case 'fixed':
        values.push((reader.word(arg) | 0) / 256);
        break;
      case 'object':
        values.push(reader.id(arg));
        break;
      case 'new_id':
        if (arg.interface !== undefined) values.push(reader.id(arg));
        else {
          const iface = reader.string(arg, false) as string;
          values.push({ interface: iface, version: reader.word(arg), id: reader.id(arg) });
        }
        break;
      case 'string':
        values.push(reader.string(arg, arg.nullable === true));
        break;
      case 'array':
        values.push(Buffer.from(reader.bytes(arg, reader.word(arg))));
        break;
      case 'fd': {
        if (fds === null) {
          values.push(-1);
          break;
        }
        const fd = fds[fdIndex++];
        if (fd === undefined) reader.fail('MISSING_FD', arg, 'has no fd');
        values.push(fd);
        break;
      }
    }
  }
  const at = reader.at;
  if (at !== end)
    throw new WaylandWireError(
      'TRAILING_BYTES',
      `${message.name}: ${end - at} bytes after the last argument`,
    );
  return values;
}

/** Decodes one whole message into its arguments by name. */
export function decodeMessage<M extends MessageSpec>(
  message: M,
  data: Uint8Array,
  start: number,
  end: number,
  fds: readonly number[],
): MessageArgs<M> {
  const values = decodeArgs(message, data, start, end, fds);
  const args: Record<string, ArgValue> = {};
  message.args.forEach((arg, index) => {
    args[arg.name] = values[index] as ArgValue;
  });
  return args as MessageArgs<M>;
}

function checkUint(value: unknown, arg: ArgSpec): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff)
    throw new WaylandWireError('BAD_VALUE', `'${arg.name}' must be a uint, got ${String(value)}`);
  return value;
}

function encodedString(value: unknown, arg: ArgSpec): Buffer | null {
  if (value === null) {
    if (!arg.nullable) throw new WaylandWireError('NULL_NOT_ALLOWED', `'${arg.name}' may not be null`);
    return null;
  }
  if (typeof value !== 'string') throw new WaylandWireError('BAD_VALUE', `'${arg.name}' must be a string`);
  const bytes = Buffer.from(`${value}\0`, 'utf8');
  if (bytes.indexOf(0) !== bytes.length - 1)
    throw new WaylandWireError('BAD_VALUE', `'${arg.name}' may not contain NUL`);
  return bytes;
}

/** Encodes one message. Its fds (the `fd` arguments, in order) must travel with it (or before it). */
export function encodeMessage<M extends MessageSpec>(
  objectId: number,
  message: M,
  args: MessageArgs<M>,
): { data: Buffer; fds: number[] } {
  const named = args as Record<string, unknown>;
  const parts: (number | Buffer | null)[] = [];
  const fds: number[] = [];
  let size = HEADER_SIZE;
  const pushBytes = (bytes: Buffer | null) => {
    parts.push(bytes);
    size += 4 + (bytes ? padded(bytes.length) : 0);
  };
  for (const arg of message.args) {
    const value = named[arg.name];
    switch (arg.type) {
      case 'int':
        if (
          typeof value !== 'number' ||
          !Number.isInteger(value) ||
          value < -0x80000000 ||
          value > 0x7fffffff
        )
          throw new WaylandWireError('BAD_VALUE', `'${arg.name}' must be an int, got ${String(value)}`);
        parts.push(value >>> 0);
        size += 4;
        break;
      case 'fixed': {
        const raw = Math.round((value as number) * 256);
        if (typeof value !== 'number' || !Number.isFinite(raw) || raw < -0x80000000 || raw > 0x7fffffff)
          throw new WaylandWireError('BAD_VALUE', `'${arg.name}' must be a 24.8 fixed, got ${String(value)}`);
        parts.push(raw >>> 0);
        size += 4;
        break;
      }
      case 'uint':
        parts.push(checkUint(value, arg));
        size += 4;
        break;
      case 'object':
      case 'new_id':
        if (arg.type === 'new_id' && arg.interface === undefined) {
          if (typeof value !== 'object' || value === null || value instanceof Uint8Array)
            throw new WaylandWireError('BAD_VALUE', `'${arg.name}' must be {interface, version, id}`);
          const newId = value as UntypedNewId;
          pushBytes(encodedString(newId.interface, { name: arg.name, type: 'string' }));
          parts.push(checkUint(newId.version, arg), checkUint(newId.id, arg));
          size += 8;
          break;
        }
        if (checkUint(value, arg) === 0 && !arg.nullable)
          throw new WaylandWireError('NULL_NOT_ALLOWED', `'${arg.name}' may not be null`);
        parts.push(value as number);
        size += 4;
        break;
      case 'string':
        pushBytes(encodedString(value, arg));
        break;
      case 'array':
        if (!(value instanceof Uint8Array))
          throw new WaylandWireError('BAD_VALUE', `'${arg.name}' must be bytes`);
        pushBytes(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
        break;
      case 'fd':
        if (typeof value !== 'number' || !Number.isInteger(value) || value < 0)
          throw new WaylandWireError('BAD_VALUE', `'${arg.name}' must be an fd`);
        fds.push(value);
        break;
    }
  }
  if (size > MAX_MESSAGE_SIZE)
    throw new WaylandWireError(
      'TOO_BIG',
      `${message.name} would be ${size} bytes (at most ${MAX_MESSAGE_SIZE})`,
    );
  const data = Buffer.alloc(size);
  data.writeUInt32LE(checkUint(objectId, { name: 'object id', type: 'uint' }), 0);
  data.writeUInt32LE(((size << 16) | message.opcode) >>> 0, 4);
  let at = HEADER_SIZE;
  for (const part of parts) {
    if (typeof part === 'number') {
      data.writeUInt32LE(part, at);
      at += 4;
    } else {
      data.writeUInt32LE(part ? part.length : 0, at);
      at += 4;
      if (part) {
        part.copy(data, at);
        at += padded(part.length);
      }
    }
  }
  return { data, fds };
}
