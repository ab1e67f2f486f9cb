import { CR, LF } from './chars.js';
import { checkTrailers, parseChunkSize } from './chunked.js';
import { HttpParseError } from './errors.js';
import { parseFieldLines } from './field-lines.js';
import { LineReader } from './line-reader.js';
import {
  type BodyFraming,
  DEFAULT_LIMITS,
  type HttpEvent,
  type HttpHeader,
  type HttpLimits,
} from './types.js';

/** Where the next message goes after one ends. */
export type NextState = 'head' | 'held' | 'opaque' | 'closed';

type State =
  | NextState
  | 'length-body'
  | 'close-body'
  | 'chunk-size'
  | 'chunk-data'
  | 'chunk-data-end'
  | 'trailers'
  | 'failed';

interface Framed {
  framing: BodyFraming;
}

/**
 * The streaming engine shared by the request and response parsers: finds heads, delimits bodies by their
 * framing, decodes chunked framing with its trailers, and passes tunnelled bytes through. What a head means is
 * left to the subclass. Body and opaque data are slices of the pushed chunks, never copies; so a caller must
 * not reuse a Buffer after pushing it.
 */
export abstract class MessageParser<Head extends Framed> {
  private state: State = 'head';
  private readonly reader: LineReader;
  private current: Head | null = null;
  private remaining = 0;
  private terminatorBytes = 0;
  private held: Buffer[] = [];
  /** Blocks (heads, chunk-size lines and their CRLF, trailer sections) completed so far. */
  private blocks = 0;

  constructor(
    limits: Partial<HttpLimits>,
    private readonly skipLeadingEmptyLines: boolean,
  ) {
    this.reader = new LineReader({ ...DEFAULT_LIMITS, ...limits });
    this.reader.begin('head', skipLeadingEmptyLines);
  }

  /** Parses the next bytes of the stream. */
  push(chunk: Buffer): HttpEvent<Head>[] {
    const events: HttpEvent<Head>[] = [];
    this.guarded(events, () => this.consume(chunk, events));
    return events;
  }

  /** The peer closed its side: ends a close-delimited body, or reports a message cut short. */
  finish(): HttpEvent<Head>[] {
    const events: HttpEvent<Head>[] = [];
    this.guarded(events, () => {
      switch (this.state) {
        case 'close-body':
          this.endMessage([], events);
          break;
        case 'head':
          if (this.reader.holdsBytes)
            throw new HttpParseError('incomplete-message', 'the stream ended inside a head');
          break;
        case 'length-body':
        case 'chunk-size':
        case 'chunk-data':
        case 'chunk-data-end':
        case 'trailers':
          throw new HttpParseError('incomplete-message', 'the stream ended inside a body');
      }
      if (this.state !== 'failed') this.state = 'closed';
    });
    return events;
  }

  /** Bytes of the Content-Length body being read that are still to come; 0 outside such a body. */
  get bodyRemaining(): number {
    return this.state === 'length-body' ? this.remaining : 0;
  }

  /**
   * The next `length` bytes of that body went on without being pushed (they are opaque): returns the events
   * pushing them would have given, but the body ones (the message's end once the body is complete).
   */
  skipBody(length: number): HttpEvent<Head>[] {
    if (
      this.state !== 'length-body' ||
      !Number.isSafeInteger(length) ||
      length < 0 ||
      length > this.remaining
    )
      throw new RangeError(`${length} bytes are not part of a body being read`);
    const events: HttpEvent<Head>[] = [];
    this.remaining -= length;
    if (this.remaining === 0) this.endMessage([], events);
    return events;
  }

  /**
   * While a head, a chunk-size line (or the CRLF after chunk data) or a trailer section has begun and not ended:
   * how many blocks ended before it, so the number differs from one block to the next; undefined otherwise.
   * Bodies are not blocks: a sender may pause inside one at will.
   */
  get partialBlock(): number | undefined {
    const inBlock =
      this.state === 'head' || this.state === 'chunk-size' || this.state === 'trailers'
        ? this.reader.holdsBytes
        : this.state === 'chunk-data-end' && this.terminatorBytes > 0;
    return inBlock ? this.blocks : undefined;
  }

  /** Whether the stream is past a point of no return: failed, closed or tunnelled. */
  get done(): boolean {
    return this.state === 'failed' || this.state === 'closed' || this.state === 'opaque';
  }

  /** Whether the parser holds bytes back until told whether the protocol switched (see `release`). */
  protected get isHolding(): boolean {
    return this.state === 'held';
  }

  /**
   * Parses a complete head block: line i is `source[lines[2i], lines[2i+1])`; `controlFree` as
   * `LineReader.controlFree` tells.
   */
  protected abstract parseHead(source: Buffer, lines: readonly number[], controlFree: boolean): Head;

  /** Where the stream goes once a message (head, body, trailers) has ended. */
  protected abstract afterMessage(head: Head): NextState;

  /** Leaves the held state: the held bytes and all later ones are either opaque or HTTP again. */
  protected release(asOpaque: boolean): HttpEvent<Head>[] {
    if (this.state !== 'held') throw new Error('no protocol switch is pending');
    const events: HttpEvent<Head>[] = [];
    const held = this.held;
    this.held = [];
    this.enter(asOpaque ? 'opaque' : 'head');
    this.guarded(events, () => {
      for (const chunk of held) this.consume(chunk, events);
    });
    return events;
  }

  private guarded(events: HttpEvent<Head>[], work: () => void): void {
    if (this.state === 'failed') return;
    try {
      work();
    } catch (error) {
      if (!(error instanceof HttpParseError)) throw error;
      this.state = 'failed';
      this.held = [];
      events.push({ kind: 'error', error });
    }
  }

  private consume(chunk: Buffer, events: HttpEvent<Head>[]): void {
    let offset = 0;
    while (offset < chunk.length) {
      switch (this.state) {
        case 'head': {
          const end = this.reader.feed(chunk, offset);
          if (end < 0) return;
          offset = end;
          this.blocks++;
          const { source, lines, controlFree } = this.reader;
          const head = this.parseHead(source, lines, controlFree);
          this.current = head;
          events.push({ kind: 'head', head });
          this.startBody(head.framing, events);
          break;
        }
        case 'length-body':
        case 'chunk-data': {
          const take = Math.min(this.remaining, chunk.length - offset);
          events.push({ kind: 'body', data: chunk.subarray(offset, offset + take) });
          offset += take;
          this.remaining -= take;
          if (this.remaining > 0) break;
          if (this.state === 'length-body') {
            this.endMessage([], events);
          } else {
            this.state = 'chunk-data-end';
            this.terminatorBytes = 0;
          }
          break;
        }
        case 'chunk-data-end':
          if (chunk[offset] !== (this.terminatorBytes === 0 ? CR : LF)) {
            throw new HttpParseError('invalid-chunk-terminator', 'chunk data is not followed by CRLF');
          }
          offset++;
          if (++this.terminatorBytes === 2) {
            this.blocks++;
            this.enter('chunk-size');
          }
          break;
        case 'chunk-size': {
          const end = this.reader.feed(chunk, offset);
          if (end < 0) return;
          offset = end;
          this.blocks++;
          const { source, lines } = this.reader;
          const size = parseChunkSize(source, lines[0] as number, lines[1] as number);
          if (size === 0) {
            this.enter('trailers');
          } else {
            this.remaining = size;
            this.state = 'chunk-data';
          }
          break;
        }
        case 'trailers': {
          const end = this.reader.feed(chunk, offset);
          if (end < 0) return;
          offset = end;
          this.blocks++;
          const { source, lines, controlFree } = this.reader;
          const trailers = parseFieldLines(source, lines, 0, controlFree);
          checkTrailers(trailers);
          this.endMessage(trailers, events);
          break;
        }
        case 'close-body':
        case 'opaque':
          events.push({ kind: this.state === 'opaque' ? 'opaque' : 'body', data: slice(chunk, offset) });
          return;
        case 'held':
          this.held.push(slice(chunk, offset));
          return;
        case 'closed':
          throw new HttpParseError('data-after-close', 'bytes after a message that closes the connection');
      }
    }
  }

  private startBody(framing: BodyFraming, events: HttpEvent<Head>[]): void {
    switch (framing.kind) {
      case 'length':
        if (framing.length > 0) {
          this.remaining = framing.length;
          this.state = 'length-body';
          return;
        }
        break;
      case 'chunked':
        this.enter('chunk-size');
        return;
      case 'close':
        this.state = 'close-body';
        return;
    }
    this.endMessage([], events);
  }

  private endMessage(trailers: HttpHeader[], events: HttpEvent<Head>[]): void {
    events.push({ kind: 'end', trailers });
    const head = this.current;
    this.current = null;
    this.enter(head === null ? 'closed' : this.afterMessage(head));
  }

  private enter(state: State): void {
    this.state = state;
    if (state === 'head') this.reader.begin('head', this.skipLeadingEmptyLines);
    else if (state === 'chunk-size') this.reader.begin('line');
    else if (state === 'trailers') this.reader.begin('trailers');
  }
}

function slice(chunk: Buffer, offset: number): Buffer {
  return offset === 0 ? chunk : chunk.subarray(offset);
}
