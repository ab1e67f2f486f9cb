// Streaming SASL decoders: chunks in, one command at a time out, leftover bytes handed back untouched.
import { DBusProtocolError } from './errors.js';
import {
  MAX_SASL_LINE_LENGTH,
  parseSaslClientLine,
  parseSaslServerLine,
  type SaslClientCommand,
  type SaslServerCommand,
} from './sasl.js';

const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');

/** Buffers bytes and cuts "\r\n"-terminated lines off the front. */
class LineBuffer {
  private buffered: Buffer = EMPTY;
  // Where to resume looking for "\r\n", so a long line arriving byte by byte is scanned once.
  private scanned = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
  }

  get length(): number {
    return this.buffered.length;
  }

  /** Everything not yet consumed, left in place (a view: do not keep it). */
  peek(): Buffer {
    return this.buffered;
  }

  firstByte(): number | undefined {
    return this.buffered[0];
  }

  skip(n: number): void {
    this.buffered = this.buffered.subarray(n);
    this.scanned = 0;
  }

  /** The next complete line without its "\r\n" (latin1), or undefined until one is complete. */
  line(): string | undefined {
    const end = this.buffered.indexOf(CRLF, this.scanned);
    if (end < 0 ? this.buffered.length >= MAX_SASL_LINE_LENGTH : end + CRLF.length > MAX_SASL_LINE_LENGTH) {
      throw new DBusProtocolError(
        'SASL_LINE_TOO_LONG',
        `SASL line longer than ${MAX_SASL_LINE_LENGTH} bytes`,
      );
    }
    if (end < 0) {
      this.scanned = Math.max(0, this.buffered.length - 1);
      return undefined;
    }
    const line = this.buffered.toString('latin1', 0, end);
    this.skip(end + CRLF.length);
    return line;
  }

  /** Everything not yet consumed; the buffer is left empty. */
  take(): Buffer {
    const rest = this.buffered;
    this.buffered = EMPTY;
    this.scanned = 0;
    return rest;
  }
}

/**
 * Decodes what a client sends: the leading NUL byte (which may arrive alone), then command lines up to and
 * including BEGIN. After BEGIN it decodes nothing more: `remainder()` returns the bytes that followed it in
 * the stream (the first messages), exactly as received.
 */
export class SaslClientDecoder {
  private readonly input = new LineBuffer();
  private sawNul = false;
  private begun = false;

  /** True once BEGIN has been decoded. */
  get finished(): boolean {
    return this.begun;
  }

  push(chunk: Buffer): void {
    this.input.push(chunk);
  }

  /** The next command, or undefined until a complete line is buffered (and always after BEGIN). */
  next(): SaslClientCommand | undefined {
    if (this.begun) return undefined;
    if (!this.sawNul) {
      const first = this.input.firstByte();
      if (first === undefined) return undefined;
      if (first !== 0) {
        throw new DBusProtocolError(
          'SASL_MISSING_NUL',
          `a client must send a NUL byte first, got 0x${first.toString(16)}`,
        );
      }
      this.input.skip(1);
      this.sawNul = true;
    }
    const line = this.input.line();
    if (line === undefined) return undefined;
    const command = parseSaslClientLine(line);
    if (command.command === 'BEGIN') this.begun = true;
    return command;
  }

  /** Takes the bytes not decoded (after BEGIN: the start of the message stream). A view when possible. */
  remainder(): Buffer {
    return this.input.take();
  }

  /** The bytes received but not decoded yet (an incomplete line), left in place: a view, do not keep it. */
  pending(): Buffer {
    return this.input.peek();
  }
}

/**
 * Decodes what a server sends. A server's replies carry no end marker of their own, so the caller (which
 * knows how many replies are due) stops calling `next()` after the last one and takes `remainder()`.
 */
export class SaslServerDecoder {
  private readonly input = new LineBuffer();

  push(chunk: Buffer): void {
    this.input.push(chunk);
  }

  next(): SaslServerCommand | undefined {
    const line = this.input.line();
    return line === undefined ? undefined : parseSaslServerLine(line);
  }

  remainder(): Buffer {
    return this.input.take();
  }

  /** The bytes received but not decoded yet (an incomplete line), left in place: a view, do not keep it. */
  pending(): Buffer {
    return this.input.peek();
  }
}
