// Bounds-checked reads of marshalled data. Every failure is a DBusProtocolError; Buffer never gets to throw.
import { DBusProtocolError } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export class MessageReader {
  /** Offset of the next byte, from the start of the message (alignment is counted from there). */
  pos: number;

  constructor(
    readonly buffer: Buffer,
    readonly littleEndian: boolean,
    pos = 0,
    /** Reads never go past this offset. */
    readonly end = buffer.length,
  ) {
    this.pos = pos;
  }

  /** Makes sure `n` more bytes are there, and returns where they start. */
  take(n: number): number {
    const at = this.pos;
    if (at + n > this.end) {
      throw new DBusProtocolError(
        'TRUNCATED',
        `data runs past the end: needs ${n} bytes at offset ${at}, only ${this.end - at} left`,
      );
    }
    this.pos = at + n;
    return at;
  }

  /** Skips the padding up to the next multiple of `boundary`; padding bytes must be zero. */
  align(boundary: number): void {
    const padding = -this.pos & (boundary - 1);
    if (padding === 0) return;
    const at = this.take(padding);
    for (let i = at; i < at + padding; i++) {
      if (this.buffer[i] !== 0) {
        throw new DBusProtocolError('BAD_PADDING', `non-zero alignment padding at offset ${i}`);
      }
    }
  }

  uint8(): number {
    return this.buffer[this.take(1)] as number;
  }

  int16(): number {
    this.align(2);
    const at = this.take(2);
    return this.littleEndian ? this.buffer.readInt16LE(at) : this.buffer.readInt16BE(at);
  }

  uint16(): number {
    this.align(2);
    const at = this.take(2);
    return this.littleEndian ? this.buffer.readUInt16LE(at) : this.buffer.readUInt16BE(at);
  }

  int32(): number {
    this.align(4);
    const at = this.take(4);
    return this.littleEndian ? this.buffer.readInt32LE(at) : this.buffer.readInt32BE(at);
  }

  uint32(): number {
    this.align(4);
    const at = this.take(4);
    return this.littleEndian ? this.buffer.readUInt32LE(at) : this.buffer.readUInt32BE(at);
  }

  int64(): bigint {
    this.align(8);
    const at = this.take(8);
    return this.littleEndian ? this.buffer.readBigInt64LE(at) : this.buffer.readBigInt64BE(at);
  }

  uint64(): bigint {
    this.align(8);
    const at = this.take(8);
    return this.littleEndian ? this.buffer.readBigUInt64LE(at) : this.buffer.readBigUInt64BE(at);
  }

  double(): number {
    this.align(8);
    const at = this.take(8);
    return this.littleEndian ? this.buffer.readDoubleLE(at) : this.buffer.readDoubleBE(at);
  }

  /** A copy of the next `n` bytes (a copy, so a small value never keeps a large message alive). */
  bytes(n: number): Buffer {
    const at = this.take(n);
    return Buffer.from(this.buffer.subarray(at, at + n));
  }

  /** `s` and `o`: uint32 length, UTF-8 without NUL, NUL terminator. */
  string(): string {
    return this.text(this.uint32());
  }

  /** `g`: byte length, ASCII, NUL terminator. */
  signature(): string {
    return this.text(this.uint8());
  }

  private text(length: number): string {
    const start = this.take(length + 1);
    const end = start + length;
    const { buffer } = this;
    let ascii = true;
    for (let i = start; i < end; i++) {
      const byte = buffer[i] as number;
      if (byte === 0) throw new DBusProtocolError('BAD_STRING', `string contains a NUL byte at offset ${i}`);
      if (byte > 0x7f) ascii = false;
    }
    if (buffer[end] !== 0)
      throw new DBusProtocolError('BAD_STRING', `string at offset ${start} is not NUL-terminated`);
    if (ascii) return buffer.toString('latin1', start, end);
    try {
      return utf8.decode(buffer.subarray(start, end));
    } catch {
      throw new DBusProtocolError('BAD_STRING', `string at offset ${start} is not valid UTF-8`);
    }
  }
}
