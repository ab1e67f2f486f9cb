// The writes an FdSocket has not sent yet, and how they are cut into sendmsg calls: the fds of a write go with the
// first byte of that write; following writes without fds are coalesced into the same call (several iovecs), a write
// with fds never is.
import { closeFds } from './fds.js';

interface QueuedWrite {
  data: Buffer;
  /** Still ours to send (and close); null once sent or when the write had none. */
  fds: number[] | null;
}

/** One sendmsg: `buffers` (the first from `offset`, the others whole); `fds` go with its first byte. */
export interface Batch {
  /** One write's data alone, or several writes' in order. */
  buffers: Buffer | Buffer[];
  offset: number;
  fds: number[] | null;
  /** Bytes in the batch. */
  bytes: number;
}

/** Coalescing limits of one sendmsg. */
const MAX_BATCH_BUFFERS = 64;
const MAX_BATCH_BYTES = 1024 * 1024;
/** Sent entries are dropped from the front of the array once this many have piled up. */
const COMPACT_AFTER = 1024;
/** What a sent entry's slot holds until then: its Buffer is released, and the array keeps one kind of element. */
const SENT: QueuedWrite = { data: Buffer.alloc(0), fds: null };

export class WriteQueue {
  /** Pending writes from #start on; the first one already sent up to #headOffset. */
  #queue: QueuedWrite[] = [];
  #start = 0;
  #headOffset = 0;
  #bytes = 0;
  /** Writes made while held: they wait behind what the socket is being fed meanwhile (a transfer). */
  #held: QueuedWrite[] | null = null;

  /** Bytes not yet sent, held writes included. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Nothing is ready to send (held writes do not count). */
  get empty(): boolean {
    return this.#start === this.#queue.length;
  }

  /** Queues a non-empty write; the queue owns `fds` from now on. */
  push(data: Buffer, fds: number[] | null): void {
    (this.#held ?? this.#queue).push({ data, fds });
    this.#bytes += data.length;
  }

  /** Writes from now on wait until `release`. */
  hold(): void {
    this.#held ??= [];
  }

  /** The held writes join the queue. */
  release(): void {
    const held = this.#held;
    this.#held = null;
    if (held) for (const write of held) this.#queue.push(write);
  }

  /** The next sendmsg: the head write and following writes that carry no fds. Only when not `empty`. */
  batch(): Batch {
    const head = this.#queue[this.#start] as QueuedWrite;
    const offset = this.#headOffset;
    const next = this.#queue[this.#start + 1];
    // The usual case: one write, or one the next cannot join; no array for it.
    if (next === undefined || next.fds || head.data.length - offset >= MAX_BATCH_BYTES)
      return { buffers: head.data, offset, fds: head.fds, bytes: head.data.length - offset };
    const buffers: Buffer[] = [];
    let bytes = -offset;
    for (let i = this.#start; i < this.#queue.length && buffers.length < MAX_BATCH_BUFFERS; i++) {
      const entry = this.#queue[i] as QueuedWrite;
      if (buffers.length > 0 && entry.fds) break;
      buffers.push(entry.data);
      bytes += entry.data.length;
      if (bytes >= MAX_BATCH_BYTES) break;
    }
    return { buffers, offset, fds: head.fds, bytes };
  }

  /** `sent` bytes of the last batch went out, and its fds with them: the kernel holds its own references now. */
  sent(sent: number): void {
    const head = this.#queue[this.#start] as QueuedWrite;
    if (head.fds) {
      closeFds(head.fds);
      head.fds = null;
    }
    this.#bytes -= sent;
    let remaining = sent + this.#headOffset;
    while (this.#start < this.#queue.length) {
      const length = (this.#queue[this.#start] as QueuedWrite).data.length;
      if (remaining < length) break;
      remaining -= length;
      this.#queue[this.#start] = SENT;
      this.#start += 1;
    }
    this.#headOffset = remaining;
    // The array is kept while it is short, even empty: a new one per flush would grow its storage on every write.
    if (this.#start >= COMPACT_AFTER) {
      this.#queue = this.#queue.slice(this.#start);
      this.#start = 0;
    }
  }

  /** Drops every unsent write and closes its fds (the socket is destroyed). */
  clear(): void {
    for (let i = this.#start; i < this.#queue.length; i++) {
      const fds = this.#queue[i]?.fds;
      if (fds) closeFds(fds);
    }
    for (const { fds } of this.#held ?? []) if (fds) closeFds(fds);
    this.#queue = [];
    this.#held = null;
    this.#start = 0;
    this.#headOffset = 0;
    this.#bytes = 0;
  }
}
