// File descriptors as plain numbers: closing, duplicating, and the queue in which received fds wait for the
// message that uses them.
import { fdio } from './fdio.js';

/** Closes an fd the caller owns; throws (EBADF) if it was not open. */
export function closeFd(fd: number): void {
  fdio.close(fd);
}

/**
 * Closes fds the caller owns and no longer needs (received with bytes nobody forwards, held when a connection
 * ends). Quiet: a failure means the fd was never valid, and there is nothing left to undo.
 */
export function closeFds(fds: Iterable<number>): void {
  for (const fd of fds) {
    try {
      fdio.close(fd);
    } catch {}
  }
}

/** A close-on-exec duplicate of fd. */
export function dupFd(fd: number): number {
  return fdio.dup(fd);
}

const COMPACT_AFTER = 1024;

/** Received fds in arrival order, taken from the front by the messages that use them. The queue owns them. */
export class FdQueue {
  #fds: number[] = [];
  #head = 0;

  get length(): number {
    return this.#fds.length - this.#head;
  }

  push(fds: readonly number[]): void {
    if (fds.length === 0) return;
    // Drop what was taken, so a queue that is never quite empty does not grow without end.
    if (this.#head === this.#fds.length || this.#head >= COMPACT_AFTER) {
      this.#fds = this.#fds.slice(this.#head);
      this.#head = 0;
    }
    for (const fd of fds) this.#fds.push(fd);
  }

  /** The next `count` fds, now the caller's. Throws RangeError (taking none) if fewer are queued. */
  take(count: number): number[] {
    if (count === 0) return [];
    if (count > this.length) throw new RangeError(`${count} fds wanted, ${this.length} queued`);
    const taken = this.#fds.slice(this.#head, this.#head + count);
    this.#head += count;
    return taken;
  }

  /** Closes every queued fd (the connection is over, or they can go nowhere). */
  close(): void {
    closeFds(this.#fds.slice(this.#head));
    this.#fds = [];
    this.#head = 0;
  }
}
