// Streaming framer: arbitrary chunks in, complete raw messages (with their declared fd counts) out.
import { DBusProtocolError } from './errors.js';
import { type FixedHeader, readFixedHeader } from './fixed-header.js';
import { FIXED_HEADER_LENGTH, HeaderField } from './message.js';
import { readHeaderFields } from './unmarshal.js';

export interface FramedMessage {
  /** The whole message: a view into the pushed chunk when it lay within one, otherwise a single copy. */
  readonly bytes: Buffer;
  /** How many unix fds the message declares (its UNIX_FDS header field; 0 when absent). */
  readonly unixFds: number;
}

// Bytes a basic value takes and the boundary it starts on, for skipping header fields without decoding them.
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

function truncatedFields(): never {
  throw new DBusProtocolError('TRUNCATED', 'a header field runs past the end of the header-field array');
}

/**
 * Finds UNIX_FDS by walking the header fields, skipping each value by its type. Fields holding a container
 * (only possible for unknown codes) fall back to the full header-field reader.
 */
function declaredUnixFds(message: Buffer, header: FixedHeader): number {
  const end = FIXED_HEADER_LENGTH + header.fieldsLength;
  const le = header.littleEndian;
  let unixFds: number | undefined;
  let pos = FIXED_HEADER_LENGTH;
  while (pos < end) {
    pos += -pos & 7;
    if (pos + 4 > end) truncatedFields();
    const code = message[pos];
    const type = String.fromCharCode(message[pos + 2] as number);
    const simpleSignature = message[pos + 1] === 1 && message[pos + 3] === 0;
    const badUnixFds = code === HeaderField.UNIX_FDS && (type !== 'u' || unixFds !== undefined);
    if (!simpleSignature || badUnixFds) return fromAllFields(message, header);
    pos += 4;
    const size = FIXED_SIZE[type];
    if (size !== undefined) {
      pos += -pos & (size - 1);
      if (pos + size > end) truncatedFields();
      if (code === HeaderField.UNIX_FDS) unixFds = le ? message.readUInt32LE(pos) : message.readUInt32BE(pos);
      pos += size;
    } else if (type === 's' || type === 'o') {
      pos += -pos & 3;
      if (pos + 4 > end) truncatedFields();
      pos += 4 + (le ? message.readUInt32LE(pos) : message.readUInt32BE(pos)) + 1;
    } else if (type === 'g') {
      if (pos + 1 > end) truncatedFields();
      pos += 1 + (message[pos] as number) + 1;
    } else {
      return fromAllFields(message, header);
    }
  }
  if (pos !== end) truncatedFields();
  return unixFds ?? 0;
}

/** The slow path, which also produces the precise error for a malformed field. */
function fromAllFields(message: Buffer, header: FixedHeader): number {
  return (readHeaderFields(message, header).unixFds as number | undefined) ?? 0;
}

/**
 * Cuts a byte stream into messages using only the fixed header (and the header fields, for UNIX_FDS).
 * It does not validate bodies: use `unmarshal` for that. After an error the stream has lost framing and
 * every later push throws the same error.
 */
export class DBusFramer {
  // Bytes of an incomplete message, oldest first; `pendingHeader` once its fixed header is in.
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private pendingHeader: FixedHeader | undefined;
  private failure: DBusProtocolError | undefined;

  /** Bytes held back, waiting for the rest of their message. */
  get bufferedBytes(): number {
    return this.pendingLength;
  }

  push(chunk: Buffer): FramedMessage[] {
    if (this.failure) throw this.failure;
    try {
      return this.frame(chunk);
    } catch (error) {
      if (error instanceof DBusProtocolError) this.failure = error;
      throw error;
    }
  }

  private frame(chunk: Buffer): FramedMessage[] {
    const messages: FramedMessage[] = [];
    let offset = 0;
    if (this.pendingLength > 0) {
      offset = this.completePending(chunk, messages);
      if (offset < 0) return messages;
    }
    // Messages wholly inside this chunk are returned as views into it: no copy.
    while (chunk.length - offset >= FIXED_HEADER_LENGTH) {
      const header = readFixedHeader(chunk, offset);
      if (chunk.length - offset < header.length) break;
      const bytes = chunk.subarray(offset, offset + header.length);
      messages.push({ bytes, unixFds: declaredUnixFds(bytes, header) });
      offset += header.length;
    }
    if (offset < chunk.length) this.hold(chunk.subarray(offset));
    return messages;
  }

  /**
   * Feeds the message started by earlier chunks. Returns the offset in `chunk` where it ended, or -1 when
   * the whole chunk was needed (and held).
   */
  private completePending(chunk: Buffer, messages: FramedMessage[]): number {
    let header = this.pendingHeader;
    if (header === undefined) {
      const available = this.pendingLength + chunk.length;
      if (available < FIXED_HEADER_LENGTH) {
        this.hold(chunk);
        return -1;
      }
      const start = Buffer.concat(
        [...this.pending, chunk.subarray(0, FIXED_HEADER_LENGTH)],
        FIXED_HEADER_LENGTH,
      );
      header = readFixedHeader(start, 0);
      this.pendingHeader = header;
    }
    const needed = header.length - this.pendingLength;
    if (chunk.length < needed) {
      this.hold(chunk);
      return -1;
    }
    const bytes = Buffer.concat([...this.pending, chunk.subarray(0, needed)], header.length);
    this.pending = [];
    this.pendingLength = 0;
    this.pendingHeader = undefined;
    messages.push({ bytes, unixFds: declaredUnixFds(bytes, header) });
    return needed;
  }

  private hold(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.pending.push(bytes);
    this.pendingLength += bytes.length;
  }
}
