// One direction of a Wayland connection as a relay StreamFilter: splits the byte stream into whole messages, lets a
// handler decide each one's fate, and forwards the kept messages with exactly the fds they carry. Consecutive kept
// messages go out as one write (a slice of the chunk, no copy) unless that write would carry more than 28 fds
// (libwayland's receive limit): then the write is cut before the message whose fds would overflow it, so every fd
// still travels with the bytes of its own message or of a message just before it, never later.
import type { Chunk } from '../native/fd-socket.js';
import { FdQueue } from '../native/fds.js';
import {
  checkMessageSize,
  HEADER_SIZE,
  MAX_FDS_PER_WAYLAND_READ,
  type MessageHeader,
  readUint32,
} from '../protocols/wayland/wire.js';
import { type FilterSink, RelayRejection, type StreamFilter } from './relay.js';

/** A peer may send fds ahead of the messages that use them, but not without bound. */
export const MAX_FDS_AHEAD_OF_MESSAGES = 256;

/**
 * What the handler decided about one message: forward it with its `fd` arguments, this many fds from the queue (0 or
 * more), or OPAQUE, or DROP. A number, so that deciding per message compares numbers (comparing a union of objects
 * and strings takes V8's generic path).
 */
export type Decision = number;
/** Forward it; its fds are unknown (an interface we have no table for): send what is queued along. */
export const OPAQUE = -1;
/** Swallow it (a hidden global); it carries no fds. */
export const DROP = -2;

/** The message being decided on. One object per framer, refilled for each message: handlers must not keep it. */
export interface FramedMessage extends MessageHeader {
  /** The buffer holding the whole message at [start, start + size). */
  data: Buffer;
  start: number;
}

const EMPTY = Buffer.alloc(0);
/** The fds of a message or write that has none: shared, so it must never be added to. */
const NO_FDS: number[] = [];

export type MessageHandler = (message: FramedMessage, sink: FilterSink) => Decision;

export class WaylandFramer implements StreamFilter {
  /** Bytes of an incomplete message, held until the rest arrives. */
  #pending: Buffer | null = null;
  /** Received fds not yet forwarded, in arrival order. */
  readonly #queue = new FdQueue();
  /**
   * Set once an opaque message passed: its fds are unknown, so from then on fds can no longer be matched to
   * messages, and every forwarded message takes all queued fds along (at most 28 per write). The compositor reads
   * fds in order from one queue, so what counts is that none is sent after the bytes of the message using it.
   */
  #inexact = false;
  readonly #message: FramedMessage = { objectId: 0, opcode: 0, size: 0, data: EMPTY, start: 0 };
  /** Messages framed so far: which message a partial one is. */
  #framed = 0;

  constructor(private readonly handle: MessageHandler) {}

  push(chunk: Chunk, sink: FilterSink): void {
    this.#queue.push(chunk.fds);
    if (this.#queue.length > MAX_FDS_AHEAD_OF_MESSAGES)
      throw new RelayRejection(
        `${this.#queue.length} fds received that no message uses (at most ${MAX_FDS_AHEAD_OF_MESSAGES})`,
      );
    this.#frame(chunk.data, sink);
  }

  end(): void {
    const pending = this.#pending;
    if (pending) {
      const size = pending.length >= HEADER_SIZE ? `${pending.readUInt32LE(4) >>> 16}-byte` : 'header of a';
      throw new RelayRejection(
        `truncated message: the stream ended after ${pending.length} bytes of a ${size} message`,
      );
    }
  }

  /** Closes the fds still held (the connection is over). */
  dispose(): void {
    this.#queue.close();
    this.#pending = null;
  }

  partialMessage(): number | undefined {
    return this.#pending === null ? undefined : this.#framed;
  }

  #frame(input: Buffer, sink: FilterSink): void {
    const data = this.#pending ? Buffer.concat([this.#pending, input]) : input;
    this.#pending = null;
    const message = this.#message;
    message.data = data;
    let offset = 0;
    /** The write being gathered: data[batchStart, offset) and its fds (NO_FDS, never written to, while none). */
    let batchStart = 0;
    let batchFds = NO_FDS;
    while (data.length - offset >= HEADER_SIZE) {
      const word = readUint32(data, offset + 4);
      const size = word >>> 16;
      checkMessageSize(size);
      if (data.length - offset < size) break;
      message.objectId = readUint32(data, offset);
      message.opcode = word & 0xffff;
      message.size = size;
      message.start = offset;
      this.#framed++;
      const decision = this.handle(message, sink);
      if (decision === DROP) {
        if (offset > batchStart) sink.forward(data.subarray(batchStart, offset), batchFds);
        batchStart = offset + size;
        batchFds = NO_FDS;
      } else {
        if (decision === OPAQUE) this.#inexact = true;
        const fds = this.#inexact ? this.#takeQueued(batchFds.length) : this.#take(decision);
        if (batchFds.length + fds.length > MAX_FDS_PER_WAYLAND_READ) {
          // Fds only join a batch with their message's bytes, so a batch with fds is never empty.
          sink.forward(data.subarray(batchStart, offset), batchFds);
          batchStart = offset;
          batchFds = fds;
        } else if (batchFds === NO_FDS) batchFds = fds;
        else for (const fd of fds) batchFds.push(fd);
      }
      offset += size;
    }
    // A chunk of whole messages, all kept, goes on as it came.
    if (offset > batchStart)
      sink.forward(offset - batchStart === data.length ? data : data.subarray(batchStart, offset), batchFds);
    message.data = EMPTY;
    if (offset < data.length) {
      // Check the header early: a bad size is refused now, not once 4096 bytes have piled up.
      if (data.length - offset >= HEADER_SIZE) checkMessageSize(readUint32(data, offset + 4) >>> 16);
      this.#pending = Buffer.from(data.subarray(offset));
    }
  }

  /** The fds a known message takes, from the front of the queue. */
  #take(count: number): number[] {
    if (count === 0) return NO_FDS;
    if (count > this.#queue.length)
      throw new RelayRejection(
        `a message carries ${count} fds but only ${this.#queue.length} were received with or before it`,
      );
    if (count > MAX_FDS_PER_WAYLAND_READ)
      throw new RelayRejection(`a message carries ${count} fds (at most ${MAX_FDS_PER_WAYLAND_READ})`);
    return this.#queue.take(count);
  }

  /** Everything queued, as much as fits the current write (or a fresh one, when it is full). */
  #takeQueued(inBatch: number): number[] {
    const room =
      inBatch >= MAX_FDS_PER_WAYLAND_READ ? MAX_FDS_PER_WAYLAND_READ : MAX_FDS_PER_WAYLAND_READ - inBatch;
    const count = Math.min(room, this.#queue.length);
    return count === 0 ? NO_FDS : this.#queue.take(count);
  }
}
