// A pipe that carries a given number of bytes from one socket to another inside the kernel (splice(2) in, splice
// out), for FdSocket.transferTo: the bytes are never copied into the process.

import { fdio } from './fdio.js';
import { closeFds } from './fds.js';

export class SplicePipe {
  readonly #read: number;
  readonly #write: number;
  readonly #capacity: number;
  /** Still to take from the source. */
  #remaining: number;
  /** Taken from the source, not yet given to the target. */
  #inPipe = 0;
  /** Given to the target. */
  moved = 0;
  /** The source's stream ended before all were taken. */
  sourceEnded = false;

  constructor(length: number) {
    [this.#read, this.#write, this.#capacity] = fdio.pipe();
    this.#remaining = length;
  }

  /** More is to come from the source. */
  get expecting(): boolean {
    return this.#remaining > 0 && !this.sourceEnded;
  }

  /** More is to come and the pipe has room for it: the source is worth reading. */
  get wantsInput(): boolean {
    return this.expecting && this.#inPipe < this.#capacity;
  }

  /** Bytes waiting in the pipe for the target. */
  get held(): number {
    return this.#inPipe;
  }

  /** Takes what fits from `fd`; false if it has nothing now. Throws the splice error. */
  fill(fd: number): boolean {
    const taken = fdio.splice(fd, this.#write, Math.min(this.#remaining, this.#capacity - this.#inPipe));
    if (taken < 0) return false;
    if (taken === 0) this.sourceEnded = true;
    this.#remaining -= taken;
    this.#inPipe += taken;
    return true;
  }

  /** Gives `fd` what it takes of the pipe's bytes: how many, or -1 if it takes none now. Throws the splice error. */
  drainInto(fd: number): number {
    const given = fdio.splice(this.#read, fd, this.#inPipe);
    if (given > 0) {
      this.#inPipe -= given;
      this.moved += given;
    }
    return given;
  }

  close(): void {
    closeFds([this.#read, this.#write]);
  }
}
