// One direction of a D-Bus connection after BEGIN: the byte stream cut into whole messages, each sent on with
// exactly the unix fds its UNIX_FDS header field declares.
//
// Fds queue per direction, as in libdbus: a message takes the next N fds that arrived with it or before it.
// A message that declares more fds than have arrived, fds that no message can claim any more, and bytes that
// are not a well-framed message all end the connection with the reason: nothing half-understood goes on. The fds
// still queued are closed when the relay disposes of the filter.
import type { Chunk } from '../native/fd-socket.js';
import { FdQueue } from '../native/fds.js';
import { DBusFramer } from '../protocols/dbus/index.js';
import { type FilterSink, RelayRejection, type StreamFilter } from './relay.js';

/** Fds held for a message still arriving; far above what buses accept in one message (dbus-daemon: 16). */
const MAX_FDS_AWAITING_A_MESSAGE = 1024;

function adjacent(run: Buffer, next: Buffer): boolean {
  return run.buffer === next.buffer && run.byteOffset + run.length === next.byteOffset;
}

export class DBusMessageFilter implements StreamFilter {
  private readonly framer = new DBusFramer();
  private readonly fds = new FdQueue();
  /** Messages framed so far: which message a partial one is. */
  private messages = 0;

  /** `unixFds`: whether the handshake negotiated fd passing; without it, any fd ends the connection. */
  constructor(private readonly unixFds: boolean) {}

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
      if (unixFds === 0 && run !== null && adjacent(run, bytes)) {
        run = Buffer.from(run.buffer, run.byteOffset, run.length + bytes.length);
        continue;
      }
      this.flush(run, sink);
      run = unixFds === 0 ? bytes : null;
      if (unixFds === 0) continue;
      if (unixFds > this.fds.length) {
        throw new RelayRejection(`a message declares ${unixFds} unix fds but ${this.fds.length} arrived`);
      }
      sink.forward(bytes, this.fds.take(unixFds));
    }
    this.flush(run, sink);
    // Fds travel with the first byte of their message: once no message is under way, none can claim them.
    if (this.fds.length > 0 && this.framer.bufferedBytes === 0) {
      throw new RelayRejection(`${this.fds.length} unix fds arrived that no message declares`);
    }
    if (this.fds.length > MAX_FDS_AWAITING_A_MESSAGE) {
      throw new RelayRejection(`more than ${MAX_FDS_AWAITING_A_MESSAGE} unix fds wait for one message`);
    }
  }

  private flush(run: Buffer | null, sink: FilterSink): void {
    if (run !== null) sink.forward(run);
  }
}
