import { CR, HTAB, LF } from './chars.js';
import { HttpParseError } from './errors.js';
import type { HttpLimits } from './types.js';

/**
 * What a block is: a head (start line, field lines, empty line), a trailer section (field lines, empty line)
 * or a single line (a chunk-size line).
 */
export type BlockKind = 'head' | 'trailers' | 'line';

const EMPTY = Buffer.alloc(0);

/**
 * Finds the CRLF-delimited lines of one block in a stream of chunks, enforcing CRLF (no bare LF) and the size
 * limits as bytes arrive. A block that lies inside one chunk is never copied; a block split across chunks is
 * gathered in a stash that grows by doubling, so byte-by-byte input costs linear time.
 * When `feed` reports completion, line i is `source[lines[2i], lines[2i+1])`, CRLF excluded.
 */
export class LineReader {
  source: Buffer = EMPTY;
  lines: number[] = [];
  private kind: BlockKind = 'head';
  private skipLeadingEmptyLines = false;
  private stash: Buffer = EMPTY;
  private stashed = 0;
  private blockStart = 0;
  private lineStart = 0;
  private scanFrom = 0;
  private fieldBytes = 0;
  /** Bytes outside field text seen in the block's lines so far, the CRs of their CRLFs aside. */
  private controls = 0;

  constructor(private readonly limits: HttpLimits) {}

  /** Starts a new block. Leading empty lines may precede a request line (RFC 9112 §2.2). */
  begin(kind: BlockKind, skipLeadingEmptyLines = false): void {
    this.kind = kind;
    this.skipLeadingEmptyLines = skipLeadingEmptyLines;
    this.source = EMPTY;
    // A new array, not `length = 0`: that setter is a runtime call, dearer than an empty array.
    if (this.lines.length > 0) this.lines = [];
    this.stashed = 0;
    this.blockStart = 0;
    this.lineStart = 0;
    this.scanFrom = 0;
    this.fieldBytes = 0;
    this.controls = 0;
  }

  /**
   * Whether the lines of the block hold no byte outside field text (a CTL other than HTAB, or DEL): seen on the
   * way to each LF, so that field values need no second pass of their own when there is none.
   */
  get controlFree(): boolean {
    return this.controls === 0;
  }

  /** Whether part of an unfinished block is held. */
  get holdsBytes(): boolean {
    return this.stashed > 0;
  }

  /** Reads from chunk[offset]; returns the offset just past the block, or -1 when all was taken and more is needed. */
  feed(chunk: Buffer, offset: number): number {
    if (this.stashed === 0) {
      this.blockStart = this.lineStart = this.scanFrom = offset;
      const end = this.scan(chunk, chunk.length);
      if (end >= 0) {
        this.source = chunk;
        return end;
      }
      this.stashFrom(chunk);
      return -1;
    }
    // Copy no more than a block can hold; skipped empty lines free room, so it may take more than one round.
    for (let at = offset; ; ) {
      const before = this.stashed;
      const take = Math.min(chunk.length - at, this.budget() - before);
      this.append(chunk, at, take);
      const end = this.scan(this.stash, this.stashed);
      if (end >= 0) {
        this.source = this.stash;
        return at + (end - before);
      }
      at += take;
      if (this.blockStart > 0) this.dropSkippedLines();
      if (at === chunk.length) return -1;
      if (this.stashed >= this.budget()) throw this.tooLarge();
    }
  }

  private scan(buf: Buffer, end: number): number {
    for (;;) {
      const lf = this.findLf(buf, this.scanFrom, end);
      if (lf === -1) {
        this.scanFrom = end;
        this.checkUnfinishedLine(end - this.lineStart);
        return -1;
      }
      if (lf === this.lineStart || buf[lf - 1] !== CR) {
        throw new HttpParseError('bare-lf', 'a line ends with LF without CR');
      }
      this.controls--; // the CR before it
      const lineEnd = lf - 1;
      this.scanFrom = lf + 1;
      if (lineEnd === this.lineStart && this.kind !== 'line') {
        if (this.kind === 'head' && this.lines.length === 0 && this.skipLeadingEmptyLines) {
          this.blockStart = this.lineStart = lf + 1;
          continue;
        }
        return lf + 1;
      }
      this.addLine(this.lineStart, lineEnd);
      if (this.kind === 'line') return lf + 1;
      this.lineStart = lf + 1;
    }
  }

  /** The offset of the next LF in buf[from, end), or -1; counts the other bytes outside field text on the way. */
  private findLf(buf: Buffer, from: number, end: number): number {
    for (let i = from; i < end; i++) {
      const byte = buf[i] as number;
      if (byte < 0x20 || byte === 0x7f) {
        if (byte === LF) return i;
        if (byte !== HTAB) this.controls++;
      }
    }
    return -1;
  }

  private isFieldLine(): boolean {
    return this.kind === 'trailers' || (this.kind === 'head' && this.lines.length > 0);
  }

  private addLine(start: number, end: number): void {
    const length = end - start;
    if (this.isFieldLine()) {
      this.fieldBytes += length + 2;
      if (this.fieldBytes > this.limits.maxHeaderBytes) throw this.tooLarge();
      if (this.lines.length / 2 + 1 - (this.kind === 'head' ? 1 : 0) > this.limits.maxHeaders) {
        throw new HttpParseError('too-many-headers', `more than ${this.limits.maxHeaders} field lines`);
      }
    } else if (length > this.limits.maxLineBytes) {
      throw new HttpParseError('line-too-long', `a line is longer than ${this.limits.maxLineBytes} bytes`);
    }
    this.lines.push(start, end);
  }

  /**
   * An unfinished line of `length` bytes (maybe ending in its CR) that cannot fit any more is refused now.
   * A single byte may be the CR of the empty line that ends the section, which costs nothing.
   */
  private checkUnfinishedLine(length: number): void {
    if (this.isFieldLine()) {
      if (length > 1 && this.fieldBytes + length + 1 > this.limits.maxHeaderBytes) throw this.tooLarge();
    } else if (length > this.limits.maxLineBytes + 1) {
      throw new HttpParseError('line-too-long', `a line is longer than ${this.limits.maxLineBytes} bytes`);
    }
  }

  private tooLarge(): HttpParseError {
    return new HttpParseError('headers-too-large', `field lines exceed ${this.limits.maxHeaderBytes} bytes`);
  }

  /** The most bytes an unfinished block can hold before a limit refuses it. */
  private budget(): number {
    const { maxLineBytes, maxHeaderBytes } = this.limits;
    if (this.kind === 'line') return maxLineBytes + 2;
    return (this.kind === 'head' ? maxLineBytes + 2 : 0) + maxHeaderBytes + 2;
  }

  /** Keeps the unfinished block of `chunk` (from blockStart) in the stash. */
  private stashFrom(chunk: Buffer): void {
    const base = this.blockStart;
    this.append(chunk, base, chunk.length - base);
    this.shiftOffsets(base);
  }

  /** Forgets the empty lines skipped before a request line, so a stream of them never fills the stash. */
  private dropSkippedLines(): void {
    const skipped = this.blockStart;
    this.stash.copyWithin(0, skipped, this.stashed);
    this.stashed -= skipped;
    this.shiftOffsets(skipped);
  }

  /** Moves every offset `by` bytes down, once the bytes before blockStart are no longer in front of them. */
  private shiftOffsets(by: number): void {
    for (let i = 0; i < this.lines.length; i++) this.lines[i] = (this.lines[i] as number) - by;
    this.lineStart -= by;
    this.scanFrom -= by;
    this.blockStart = 0;
  }

  private append(chunk: Buffer, offset: number, length: number): void {
    if (this.stashed + length > this.stash.length) {
      const grown = Buffer.allocUnsafe(Math.max(256, this.stash.length * 2, this.stashed + length));
      this.stash.copy(grown, 0, 0, this.stashed);
      this.stash = grown;
    }
    chunk.copy(this.stash, this.stashed, offset, offset + length);
    this.stashed += length;
  }
}
