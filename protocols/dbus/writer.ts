// A growable output buffer for marshalling. Alignment is counted from its start, which is the message's start.

const INITIAL_CAPACITY = 256;

export class MessageWriter {
  private buffer = Buffer.alloc(INITIAL_CAPACITY);
  private length = 0;

  constructor(readonly littleEndian: boolean) {}

  get position(): number {
    return this.length;
  }

  /** Makes room for `n` more bytes and returns where they start. */
  private grow(n: number): number {
    const at = this.length;
    if (at + n > this.buffer.length) {
      let capacity = this.buffer.length * 2;
      while (capacity < at + n) capacity *= 2;
      const grown = Buffer.alloc(capacity);
      this.buffer.copy(grown, 0, 0, at);
      this.buffer = grown;
    }
    this.length = at + n;
    return at;
  }

  /** Pads with zero bytes (the buffer is zero-filled) up to the next multiple of `boundary`. */
  align(boundary: number): void {
    this.grow(-this.length & (boundary - 1));
  }

  // `grow` may replace `this.buffer`, so it runs before the buffer is read, never inside one expression.
  uint8(value: number): void {
    const at = this.grow(1);
    this.buffer[at] = value;
  }

  int16(value: number): void {
    this.align(2);
    const at = this.grow(2);
    if (this.littleEndian) this.buffer.writeInt16LE(value, at);
    else this.buffer.writeInt16BE(value, at);
  }

  uint16(value: number): void {
    this.align(2);
    const at = this.grow(2);
    if (this.littleEndian) this.buffer.writeUInt16LE(value, at);
    else this.buffer.writeUInt16BE(value, at);
  }

  int32(value: number): void {
    this.align(4);
    const at = this.grow(4);
    if (this.littleEndian) this.buffer.writeInt32LE(value, at);
    else this.buffer.writeInt32BE(value, at);
  }

  uint32(value: number): void {
    this.align(4);
    this.patchUint32(this.grow(4), value);
  }

  int64(value: bigint): void {
    this.align(8);
    const at = this.grow(8);
    if (this.littleEndian) this.buffer.writeBigInt64LE(value, at);
    else this.buffer.writeBigInt64BE(value, at);
  }

  uint64(value: bigint): void {
    this.align(8);
    const at = this.grow(8);
    if (this.littleEndian) this.buffer.writeBigUInt64LE(value, at);
    else this.buffer.writeBigUInt64BE(value, at);
  }

  double(value: number): void {
    this.align(8);
    const at = this.grow(8);
    if (this.littleEndian) this.buffer.writeDoubleLE(value, at);
    else this.buffer.writeDoubleBE(value, at);
  }

  bytes(value: Uint8Array): void {
    const at = this.grow(value.length);
    this.buffer.set(value, at);
  }

  /** `s` and `o`: uint32 byte length, UTF-8, NUL. */
  string(value: string): void {
    const length = Buffer.byteLength(value, 'utf8');
    this.uint32(length);
    const at = this.grow(length + 1);
    this.buffer.write(value, at, length, 'utf8');
  }

  /** `g`: byte length, ASCII, NUL. */
  signature(value: string): void {
    this.uint8(value.length);
    const at = this.grow(value.length + 1);
    this.buffer.write(value, at, value.length, 'latin1');
  }

  /** Writes a placeholder uint32 (an array or body length known only later) and returns its offset. */
  reserveUint32(): number {
    this.align(4);
    return this.grow(4);
  }

  patchUint32(at: number, value: number): void {
    if (this.littleEndian) this.buffer.writeUInt32LE(value, at);
    else this.buffer.writeUInt32BE(value, at);
  }

  /** The bytes written so far (a view, not a copy). */
  finish(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}
