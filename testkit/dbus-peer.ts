// A small D-Bus peer for tests and benchmarks, built only from the codec and FdSocket: it speaks SASL line by line
// (so tests can send forged or broken lines), then messages with unix fds (calls, replies, signals, a service).
import { type Chunk, FdSocket } from '../native/fd-socket.js';
import { closeFd, FdQueue } from '../native/fds.js';
import {
  DBusFramer,
  type DBusMessage,
  type DBusMessageInit,
  type DBusValue,
  MessageFlag,
  MessageType,
  marshal,
  uidToHex,
  unmarshal,
} from '../protocols/dbus/index.js';

export const BUS_NAME = 'org.freedesktop.DBus';
export const BUS_PATH = '/org/freedesktop/DBus';

/** A message as received, with the fds it carried (the receiver owns them). */
export interface Received {
  message: DBusMessage;
  fds: number[];
}

export interface Call {
  /** Absent on a peer-to-peer connection. */
  destination?: string;
  path: string;
  /** Absent: a call by member name only (the bus driver dispatches those). */
  interface?: string;
  member: string;
  signature?: string;
  body?: DBusValue[];
  fds?: number[];
}

export interface ReplyInit {
  signature?: string;
  body?: DBusValue[];
  fds?: number[];
}

/** What a served method answers: a reply, or an error name and its message. */
export type Answer = ReplyInit | { error: string; message: string };

export class DBusCallError extends Error {
  override name = 'DBusCallError';

  constructor(
    readonly errorName: string,
    message: string,
  ) {
    super(`${errorName}: ${message}`);
  }
}

const CRLF = Buffer.from('\r\n');

export class DBusPeer {
  /** Set by hello(). */
  uniqueName = '';
  readonly closed: Promise<void>;

  private serial = 0;
  private messages = false;
  private buffered = Buffer.alloc(0);
  private readonly fdQueue = new FdQueue();
  private readonly framer = new DBusFramer();
  private readonly lineWaiters: ((line: string | null) => void)[] = [];
  private readonly replies = new Map<
    number,
    { resolve: (r: Received) => void; reject: (e: Error) => void }
  >();
  /** Replies and errors that answered no call of ours (a test's raw calls, or a bug). */
  readonly strayReplies: DBusMessage[] = [];
  private readonly signalListeners = new Set<(signal: Received) => void>();
  private handler: ((call: Received) => Answer | Promise<Answer>) | undefined;
  private ended = false;

  constructor(readonly socket: FdSocket) {
    socket.on('data', (chunk: Chunk) => this.onData(chunk));
    socket.on('error', () => {});
    socket.on('end', () => {
      this.onEnd();
      socket.end();
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('close', () => this.onClose());
  }

  /**
   * Connects over an fd (for instance from connectIn) and authenticates like libdbus: AUTH EXTERNAL <our uid>.
   * `hello: false` for a peer-to-peer connection (no bus, no unique name).
   */
  static async connect(fd: number, options: { unixFds?: boolean; hello?: boolean } = {}): Promise<DBusPeer> {
    const peer = new DBusPeer(new FdSocket(fd));
    try {
      peer.write(`\0AUTH EXTERNAL ${uidToHex(process.getuid?.() ?? 0)}\r\n`);
      const ok = await peer.readLine();
      if (!ok?.startsWith('OK ')) throw new Error(`authentication failed: ${ok}`);
      if (options.unixFds) {
        peer.write('NEGOTIATE_UNIX_FD\r\n');
        const agreed = await peer.readLine();
        if (agreed !== 'AGREE_UNIX_FD') throw new Error(`unix fds refused: ${agreed}`);
      }
      if (options.hello === false) {
        peer.messages = true;
        peer.write('BEGIN\r\n');
      } else {
        await peer.begin();
      }
    } catch (error) {
      peer.close();
      throw error;
    }
    return peer;
  }

  /** Raw bytes on the wire (SASL lines, or anything a test wants to try). */
  write(data: string | Buffer, fds?: number[]): boolean {
    return this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data, fds);
  }

  /** The next SASL line from the other side, or null once the connection is closed. */
  readLine(): Promise<string | null> {
    const line = this.takeLine();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => this.lineWaiters.push(resolve));
  }

  /** Sends BEGIN and Hello in one write (as libdbus does), then resolves with our unique name. */
  async begin(): Promise<string> {
    this.messages = true;
    const hello = this.message({
      type: MessageType.METHOD_CALL,
      destination: BUS_NAME,
      path: BUS_PATH,
      interface: BUS_NAME,
      member: 'Hello',
    });
    const reply = this.expectReply(hello.serial);
    this.write(Buffer.concat([Buffer.from('BEGIN\r\n'), hello.bytes]));
    // Whatever followed the last SASL line is already message data.
    const rest = this.buffered;
    this.buffered = Buffer.alloc(0);
    if (rest.length > 0) this.onMessages(rest);
    const { message } = await reply;
    this.uniqueName = String(message.body[0]);
    return this.uniqueName;
  }

  /** A method call; rejects with DBusCallError on an error reply. The fds of the reply are the caller's. */
  async call(call: Call): Promise<Received> {
    const { bytes, serial } = this.message({
      type: MessageType.METHOD_CALL,
      destination: call.destination,
      path: call.path,
      interface: call.interface,
      member: call.member,
      signature: call.signature ?? '',
      body: call.body ?? [],
      unixFds: call.fds?.length ?? 0,
    });
    const reply = this.expectReply(serial);
    this.socket.write(bytes, call.fds);
    return reply;
  }

  /** Calls the bus itself and returns the first value of the reply. */
  async callBus(member: string, signature = '', body: DBusValue[] = []): Promise<DBusValue | undefined> {
    const { message } = await this.call({
      destination: BUS_NAME,
      path: BUS_PATH,
      interface: BUS_NAME,
      member,
      signature,
      body,
    });
    return message.body[0];
  }

  emitSignal(path: string, iface: string, member: string, signature = '', body: DBusValue[] = []): boolean {
    const { bytes } = this.message({
      type: MessageType.SIGNAL,
      path,
      interface: iface,
      member,
      signature,
      body,
    });
    return this.socket.write(bytes);
  }

  onSignal(listener: (signal: Received) => void): void {
    this.signalListeners.add(listener);
  }

  /** Answers every method call addressed to us with `handler`. */
  serve(handler: (call: Received) => Answer | Promise<Answer>): void {
    this.handler = handler;
  }

  close(): void {
    this.socket.destroy();
  }

  private message(init: Omit<DBusMessageInit, 'serial' | 'flags'> & { flags?: number }): {
    bytes: Buffer;
    serial: number;
  } {
    this.serial += 1;
    return { bytes: marshal({ flags: 0, ...init, serial: this.serial }), serial: this.serial };
  }

  private expectReply(serial: number): Promise<Received> {
    return new Promise((resolve, reject) => this.replies.set(serial, { resolve, reject }));
  }

  private onData({ data, fds }: Chunk): void {
    this.fdQueue.push(fds);
    if (this.messages) {
      this.onMessages(data);
      return;
    }
    this.buffered = Buffer.concat([this.buffered, data]);
    for (let waiter = this.lineWaiters[0]; waiter; waiter = this.lineWaiters[0]) {
      const line = this.takeLine();
      if (line === undefined) return;
      this.lineWaiters.shift();
      waiter(line);
    }
  }

  private takeLine(): string | undefined {
    const end = this.buffered.indexOf(CRLF);
    if (end < 0) return undefined;
    const line = this.buffered.toString('latin1', 0, end);
    this.buffered = this.buffered.subarray(end + 2);
    return line;
  }

  private onMessages(data: Buffer): void {
    for (const { bytes, unixFds } of this.framer.push(data)) {
      const received = {
        message: unmarshal(bytes),
        fds: this.fdQueue.take(Math.min(unixFds, this.fdQueue.length)),
      };
      this.dispatch(received);
    }
  }

  private dispatch(received: Received): void {
    const { message } = received;
    if (message.type === MessageType.METHOD_RETURN || message.type === MessageType.ERROR) {
      const waiter = this.replies.get(message.replySerial ?? 0);
      if (!waiter) {
        this.strayReplies.push(message);
        return;
      }
      this.replies.delete(message.replySerial ?? 0);
      if (message.type === MessageType.ERROR) {
        waiter.reject(new DBusCallError(message.errorName ?? '', String(message.body[0] ?? '')));
      } else {
        waiter.resolve(received);
      }
    } else if (message.type === MessageType.SIGNAL) {
      for (const listener of this.signalListeners) listener(received);
    } else if (message.type === MessageType.METHOD_CALL && this.handler) {
      void this.answer(received, this.handler);
    }
  }

  private async answer(call: Received, handler: (call: Received) => Answer | Promise<Answer>): Promise<void> {
    const { message } = call;
    let answer: Answer;
    try {
      answer = await handler(call);
    } catch (error) {
      answer = { error: 'org.pvx.Test.Error.Failed', message: (error as Error).message };
    }
    if (message.flags & MessageFlag.NO_REPLY_EXPECTED) {
      for (const fd of 'fds' in answer ? (answer.fds ?? []) : []) closeFd(fd);
      return;
    }
    const common = { destination: message.sender, replySerial: message.serial };
    const reply =
      'error' in answer
        ? this.message({
            ...common,
            type: MessageType.ERROR,
            errorName: answer.error,
            signature: 's',
            body: [answer.message],
          })
        : this.message({
            ...common,
            type: MessageType.METHOD_RETURN,
            signature: answer.signature ?? '',
            body: answer.body ?? [],
            unixFds: answer.fds?.length ?? 0,
          });
    this.socket.write(reply.bytes, 'error' in answer ? undefined : answer.fds);
  }

  private onEnd(): void {
    this.ended = true;
    for (const waiter of this.lineWaiters.splice(0)) waiter(null);
  }

  private onClose(): void {
    this.onEnd();
    for (const { reject } of this.replies.values()) reject(new Error('connection closed'));
    this.replies.clear();
    this.fdQueue.close();
  }
}
