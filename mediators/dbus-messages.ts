// One direction of a D-Bus connection after BEGIN: the byte stream cut into whole messages, each sent on with
// exactly the unix fds its UNIX_FDS header field declares.
//
// Fds queue per direction, as in libdbus: a message takes the next N fds that arrived with it or before it.
// A message that declares more fds than have arrived, fds that no message can claim any more, and bytes that
// are not a well-framed message all end the connection with the reason: nothing half-understood goes on. The fds
// still queued are closed when the relay disposes of the filter. An inspector (the access policy, dbus-policy.ts)
// may hold a message back: it does not go on, and its fds are closed.
import type { Chunk } from '../native/fd-socket.js';
import { closeFds, FdQueue } from '../native/fds.js';
import { DBusFramer } from '../protocols/dbus/index.js';
import { type FilterSink, RelayRejection, type StreamFilter } from './relay.js';

/** Fds held for a message still arriving; far above what buses accept in one message (dbus-daemon: 16). */
const MAX_FDS_AWAITING_A_MESSAGE = 1024;

function adjacent(run: Buffer, next: Buffer): boolean {
  return run.buffer === next.buffer && run.byteOffset + run.length === next.byteOffset;
}

/** Sees every whole message of a direction before it goes on. */
export interface MessageInspector {
  /** Whether `message` goes on; `sink` answers its sender. Throwing ends the connection, as a malformed message. */
  admit(message: Buffer, sink: FilterSink): boolean;
  /** After the messages of one chunk went on. */
  afterMessages?(sink: FilterSink): void;
}

export class DBusMessageFilter implements StreamFilter {
  private readonly framer = new DBusFramer();
  private readonly fds = new FdQueue();
  /** Messages framed so far: which message a partial one is. */
  private messages = 0;

  /** `unixFds`: whether the handshake negotiated fd passing; without it, any fd ends the connection. */
  constructor(
    private readonly unixFds: boolean,
    private readonly inspector?: MessageInspector,
  ) {}

  push(chunk: Chunk, sink: FilterSink): void {
    if (chunk.fds.length > 0) {
      this.fds.push(chunk.fds);
      if (!this.unixFds) throw new RelayRejection('unix fds on a connection that did not negotiate them');
    }
    this.forwardMessages(chunk.data, sink);
  }

  end(): void {
    if (this.framer.bufferedBytes > 0 || this.fds.length > 0) {
      throw new RelayRejection(`stream ended inside a message (${this.framer.bufferedBytes} bytes held)`);
    }
  }

  dispose(): void {
    this.fds.close();
  }

  /** Nothing held: no bytes of an unfinished message, no fds waiting for one. */
  get idle(): boolean {
    return this.framer.bufferedBytes === 0 && this.fds.length === 0;
  }

  partialMessage(): number | undefined {
    return this.framer.bufferedBytes > 0 ? this.messages : undefined;
  }

  private forwardMessages(data: Buffer, sink: FilterSink): void {
    let messages: ReturnType<DBusFramer['push']>;
    try {
      messages = this.framer.push(data);
    } catch (error) {
      throw new RelayRejection(`malformed message: ${(error as Error).message}`);
    }
    this.messages += messages.length;
    // Consecutive messages without fds that lie next to each other in one chunk go on as one write.
    let run: Buffer | null = null;
    for (const { bytes, unixFds } of messages) {
      if (this.inspector && !this.inspector.admit(bytes, sink)) {
        this.flush(run, sink);
        run = null;
        this.dropFds(unixFds);
        continue;
      }
      if (unixFds === 0 && run !== null && adjacent(run, bytes)) {
        run = Buffer.from(run.buffer, run.byteOffset, run.length + bytes.length);
        continue;
      }
      this.flush(run, sink);
      run = unixFds === 0 ? bytes : null;
      if (unixFds === 0) continue;
      sink.forward(bytes, this.takeFds(unixFds));
    }
    this.flush(run, sink);
    this.inspector?.afterMessages?.(sink);
    // Fds travel with the first byte of their message: once no message is under way, none can claim them.
    if (this.fds.length > 0 && this.framer.bufferedBytes === 0) {
      throw new RelayRejection(`${this.fds.length} unix fds arrived that no message declares`);
    }
    if (this.fds.length > MAX_FDS_AWAITING_A_MESSAGE) {
      throw new RelayRejection(`more than ${MAX_FDS_AWAITING_A_MESSAGE} unix fds wait for one message`);
    }
  }

  private takeFds(count: number): number[] {
    if (count > this.fds.length) {
      throw new RelayRejection(`a message declares ${count} unix fds but ${this.fds.length} arrived`);
    }
    return this.fds.take(count);
  }

  /** The fds of a message that does not go on. */
  private dropFds(count: number): void {
    if (count > 0) closeFds(this.takeFds(count));
  }

  private flush(run: Buffer | null, sink: FilterSink): void {
    if (run !== null) sink.forward(run);
  }
}
