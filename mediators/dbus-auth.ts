// The SASL gate of one D-Bus connection, until BEGIN. Pure: bytes in, lines out.
//
// The gate mirrors the bus's SASL state (WaitingForAuth / WaitingForData / WaitingForBegin of the D-Bus spec) in
// lock-step: it sends the bus one client line at a time and reads the bus's reply before it looks at the next
// client line, so it always knows which state the bus is in. Only EXTERNAL reaches the bus, and every identity
// in it (AUTH EXTERNAL <hex>, DATA <hex>) is replaced by the role's uid; a bare AUTH EXTERNAL and an empty DATA
// pass, so the bus takes the connection's credentials, which are the role's too. Lines are re-serialized, never
// copied, so the bus only ever sees well-formed lines the gate chose.
import {
  SASL_NUL,
  type SaslClientCommand,
  SaslClientDecoder,
  type SaslServerCommand,
  SaslServerDecoder,
  serializeSaslCommand,
  uidToHex,
} from '../protocols/dbus/index.js';

const MECHANISM = 'EXTERNAL';
const REJECTED: SaslServerCommand = { command: 'REJECTED', mechanisms: [MECHANISM] };

/** The handshake must stop: `reply` (an ERROR line) is for the client before its connection is closed. */
export class AuthRefusal extends Error {
  override name = 'AuthRefusal';

  constructor(
    message: string,
    readonly reply?: Buffer,
  ) {
    super(message);
  }
}

/** Bytes produced by one step, in order, for each side. */
export interface AuthOutput {
  toBus: Buffer[];
  toClient: Buffer[];
}

/** The bus's SASL state as the D-Bus spec names it. */
type BusState = 'WaitingForAuth' | 'WaitingForData' | 'WaitingForBegin';
/** What the line the bus is answering was. */
type Awaiting = 'mechanism' | 'negotiate' | 'cancel';
const AWAITING: Partial<Record<SaslClientCommand['command'], Awaiting>> = {
  AUTH: 'mechanism',
  DATA: 'mechanism',
  NEGOTIATE_UNIX_FD: 'negotiate',
  CANCEL: 'cancel',
  ERROR: 'cancel',
};

/** Lines of SASL are printable ASCII; anything else before BEGIN is message data sent too early. */
const NOT_TEXT = /[^\x20-\x7e]/;

/** A refusal caused by the client's bytes: it gets an ERROR line saying why before its connection closes. */
export function clientRefusal(message: string): AuthRefusal {
  return new AuthRefusal(message, serializeSaslCommand({ command: 'ERROR', message }));
}

function refuse(message: string): never {
  throw clientRefusal(message);
}

export class SaslGate {
  private readonly client = new SaslClientDecoder();
  private readonly bus = new SaslServerDecoder();
  private readonly identity: string;
  private state: BusState = 'WaitingForAuth';
  private awaiting: Awaiting | null = null;
  private nulSent = false;
  private agreedUnixFds = false;
  /** Lines decoded so far from each side: which line a partial one is. */
  private clientLines = 0;
  private busLines = 0;

  /** `uid`: the role's uid, the only identity the bus will ever be told. */
  constructor(uid: number) {
    this.identity = uidToHex(uid);
  }

  /** True once BEGIN went to the bus: the rest of the client's stream is messages (see `remainder`). */
  get finished(): boolean {
    return this.client.finished;
  }

  /** True while a client line waits for the bus's reply: stop reading the client meanwhile. */
  get waitingForBus(): boolean {
    return this.awaiting !== null;
  }

  /** True when the bus agreed to pass unix fds on this connection. */
  get unixFds(): boolean {
    return this.agreedUnixFds;
  }

  /** While the client has sent part of a line before BEGIN: which line (a number that differs per line). */
  partialClientLine(): number | undefined {
    return !this.client.finished && this.client.pending().length > 0 ? this.clientLines : undefined;
  }

  /** While the bus has sent part of a reply: which one. */
  partialBusLine(): number | undefined {
    return this.bus.pending().length > 0 ? this.busLines : undefined;
  }

  /** Client bytes in: handles every complete line it can without waiting for the bus. */
  fromClient(data: Buffer, out: AuthOutput): void {
    this.client.push(data);
    this.drainClient(out);
  }

  /** Bus bytes in: checks the reply that was due, passes it on, then resumes the client's pipelined lines. */
  fromBus(data: Buffer, out: AuthOutput): void {
    const awaiting = this.awaiting;
    if (awaiting === null) throw new AuthRefusal('the bus sent data nobody asked for before BEGIN');
    this.bus.push(data);
    let reply: SaslServerCommand | undefined;
    try {
      reply = this.bus.next();
    } catch (error) {
      throw new AuthRefusal(`the bus: ${(error as Error).message}`);
    }
    if (reply === undefined) return;
    this.busLines += 1;
    if (this.bus.remainder().length > 0) throw new AuthRefusal('the bus sent more than one reply to a line');
    out.toClient.push(this.checkReply(reply, awaiting));
    this.awaiting = null;
    this.drainClient(out);
  }

  /** After `finished`: the client bytes that followed BEGIN (the first messages), exactly as received. */
  remainder(): Buffer {
    return this.client.remainder();
  }

  private drainClient(out: AuthOutput): void {
    while (this.awaiting === null && !this.client.finished) {
      let command: SaslClientCommand | undefined;
      try {
        command = this.client.next();
      } catch (error) {
        // A missing NUL byte or a line over the codec's 16 KiB cap.
        refuse((error as Error).message);
      }
      if (command !== undefined) this.clientLines += 1;
      if (command === undefined) {
        // An incomplete line that is not text: the client is sending messages without BEGIN.
        const partial = this.client.pending().toString('latin1');
        if (NOT_TEXT.test(partial.endsWith('\r') ? partial.slice(0, -1) : partial)) {
          refuse('message data before BEGIN');
        }
        return;
      }
      this.handleClient(command, out);
    }
  }

  private handleClient(command: SaslClientCommand, out: AuthOutput): void {
    const answer = (line: SaslServerCommand) => {
      out.toClient.push(serializeSaslCommand(line));
    };
    const error = (message: string): SaslServerCommand => ({ command: 'ERROR', message });
    const { state } = this;
    switch (command.command) {
      case 'AUTH': {
        if (state === 'WaitingForBegin') refuse('AUTH after the bus accepted the client');
        const initialResponse = this.role(command.initialResponse);
        if (state === 'WaitingForData') answer(error('AUTH while authenticating'));
        else if (command.mechanism !== MECHANISM) answer(REJECTED);
        else this.toBus(out, { command: 'AUTH', mechanism: MECHANISM, initialResponse });
        return;
      }
      case 'DATA':
        if (state === 'WaitingForData') this.toBus(out, { command: 'DATA', data: this.role(command.data) });
        else answer(error('DATA without a challenge'));
        return;
      case 'BEGIN':
        if (state !== 'WaitingForBegin') refuse('BEGIN before the bus accepted the client');
        this.toBus(out, command);
        return;
      case 'NEGOTIATE_UNIX_FD':
        if (state === 'WaitingForBegin') this.toBus(out, command);
        else answer(error('NEGOTIATE_UNIX_FD before OK'));
        return;
      case 'CANCEL':
      case 'ERROR':
        // Outside an exchange the spec answers CANCEL with ERROR and ERROR with REJECTED; inside one, the bus
        // must hear it to reset its own state. The client's error text stays here.
        if (state !== 'WaitingForAuth') this.toBus(out, { command: command.command });
        else answer(command.command === 'ERROR' ? REJECTED : error('nothing to cancel'));
        return;
      case 'UNKNOWN':
        if (NOT_TEXT.test(command.line)) refuse('message data before BEGIN');
        answer(error('unknown command'));
        return;
    }
  }

  /** Whatever identity the client gave (if it gave one) becomes the role's. */
  private role(identity: string | undefined): string | undefined {
    return identity === undefined ? undefined : this.identity;
  }

  /** One line for the bus (the first one after the NUL byte); every line but BEGIN then waits for a reply. */
  private toBus(out: AuthOutput, line: SaslClientCommand): void {
    const bytes = serializeSaslCommand(line);
    out.toBus.push(this.nulSent ? bytes : Buffer.concat([SASL_NUL, bytes]));
    this.nulSent = true;
    this.awaiting = AWAITING[line.command] ?? null;
  }

  /** The bus's reply to the line it was sent, re-serialized for the client; anything unexpected ends it. */
  private checkReply(reply: SaslServerCommand, awaiting: Awaiting): Buffer {
    const expected =
      awaiting === 'negotiate'
        ? reply.command === 'AGREE_UNIX_FD' || reply.command === 'ERROR'
        : awaiting === 'cancel'
          ? reply.command === 'REJECTED'
          : reply.command === 'OK' ||
            reply.command === 'REJECTED' ||
            reply.command === 'DATA' ||
            reply.command === 'ERROR';
    if (!expected) {
      const line = reply.command === 'UNKNOWN' ? reply.line : reply.command;
      throw new AuthRefusal(`unexpected reply from the bus: ${JSON.stringify(line.slice(0, 64))}`);
    }
    switch (reply.command) {
      case 'OK':
        this.state = 'WaitingForBegin';
        break;
      case 'DATA':
        this.state = 'WaitingForData';
        break;
      case 'REJECTED':
        this.state = 'WaitingForAuth';
        // The client may only try what the gate lets through.
        return serializeSaslCommand({
          command: 'REJECTED',
          mechanisms: reply.mechanisms.filter((mechanism) => mechanism === MECHANISM),
        });
      case 'AGREE_UNIX_FD':
        this.agreedUnixFds = true;
        break;
    }
    return serializeSaslCommand(reply);
  }
}
