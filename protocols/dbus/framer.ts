// Streaming framer: arbitrary chunks in, complete raw messages (with their declared fd counts) out.
import { DBusProtocolError } from './errors.js';
import { declaredUnixFds } from './field-scan.js';
import { type FixedHeader, readFixedHeader } from './fixed-header.js';
import { FIXED_HEADER_LENGTH } from './message.js';

export interface FramedMessage {
  /** The whole message: a view into the pushed chunk when it lay within one, otherwise a single copy. */
  readonly bytes: Buffer;
  /** How many unix fds the message declares (its UNIX_FDS header field; 0 when absent). */
  readonly unixFds: number;
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
      // A chunk that is one whole message (the common case of a call or a reply) is returned as it is.
      const bytes = header.length === chunk.length ? chunk : chunk.subarray(offset, offset + header.length);
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
