// One D-Bus connection of a dbus link, shared by its two directions: the SASL handshake until BEGIN, then whole
// messages with their fds.
//
// Until BEGIN the SASL gate (dbus-auth.ts) decides every line: the client's lines go to the bus re-serialized with
// the role's identity, or are answered by the gate; the bus's replies are checked and passed on. The handshake is
// lock-step: while a client line waits for the bus's reply, the client is not read. Fds that come with handshake
// bytes are held for the first messages after BEGIN; any other fd before BEGIN refuses the connection. After
// BEGIN each direction is a DBusMessageFilter (dbus-messages.ts), under the link's access policy when it narrows
// the role (dbus-policy.ts); the bytes that followed BEGIN in the client's stream are its first input. A role the
// policy does not narrow needs no look at its messages (the bus judges each as the role's): once what the
// handshake left has gone on, the connection is handed to the addon's byte relay, as a unix link's is.
import type { Chunk } from '../native/fd-socket.js';
import { closeFds, FdQueue } from '../native/fds.js';
import { type AuthOutput, AuthRefusal, clientRefusal, SaslGate } from './dbus-auth.js';
import { DBusMessageFilter } from './dbus-messages.js';
import type { DBusPolicySession } from './dbus-policy.js';
import { type FilterPair, type FilterSink, type Relay, RelayRejection } from './relay.js';

export class DBusConnection {
  readonly #gate: SaslGate;
  readonly #relay: Relay;
  /** Fds that came with handshake bytes: they belong to the first messages after BEGIN, or to nobody. */
  readonly #heldFds = new FdQueue();
  /** The message filters, once BEGIN went to the bus. */
  #fromClient: DBusMessageFilter | null = null;
  #fromBus: DBusMessageFilter | null = null;
  /** After BEGIN, for a role no policy narrows: the connection goes to the addon as soon as it can. */
  #handOffDue = false;
  #handOffQueued = false;

  /**
   * `uid`: the role's uid, the only identity the bus is told. `start` runs the relay with the filters.
   * `relayInAddon` takes the connection's two fds after BEGIN when no `policy` narrows the role. `policy`: the access
   * policy's view of this connection, when it narrows the role.
   */
  constructor(
    uid: number,
    start: (filters: FilterPair) => Relay,
    private readonly relayInAddon: (consumerFd: number, providerFd: number) => void,
    private readonly policy?: DBusPolicySession,
  ) {
    this.#gate = new SaslGate(uid);
    this.#relay = start({
      toProvider: {
        push: (chunk, sink) =>
          this.#fromClient ? this.#messages(this.#fromClient, chunk, sink) : this.#clientBytes(chunk),
        // A client that leaves before BEGIN takes its bus connection with it.
        end: () => (this.#fromClient ? this.#fromClient.end() : this.#relay.finish()),
        dispose: () => this.#dispose(),
        partialMessage: () =>
          this.#fromClient ? this.#fromClient.partialMessage() : this.#gate.partialClientLine(),
      },
      toConsumer: {
        push: (chunk, sink) =>
          this.#fromBus ? this.#messages(this.#fromBus, chunk, sink) : this.#busBytes(chunk),
        end: () => (this.#fromBus ? this.#fromBus.end() : this.#busLeft()),
        partialMessage: () => (this.#fromBus ? this.#fromBus.partialMessage() : this.#gate.partialBusLine()),
      },
    });
  }

  /** A chunk after BEGIN, either way: its messages go on, and a hand-off still due is tried after them. */
  #messages(filter: DBusMessageFilter, chunk: Chunk, sink: FilterSink): void {
    filter.push(chunk, sink);
    if (this.#handOffDue) this.#queueHandOff();
  }

  #clientBytes({ data, fds }: Chunk): void {
    this.#heldFds.push(fds);
    this.#step((out) => this.#gate.fromClient(data, out));
  }

  #busBytes({ data, fds }: Chunk): void {
    if (fds.length === 0) {
      this.#step((out) => this.#gate.fromBus(data, out));
      return;
    }
    closeFds(fds);
    this.#refuse(new AuthRefusal('the bus sent unix fds before BEGIN'));
  }

  /** The bus closed before BEGIN: its last reply (REJECTED, ERROR) still reaches the client, then it is closed. */
  #busLeft(): void {
    this.#relay.reject(
      'toProvider',
      new RelayRejection('the bus closed the connection during authentication'),
    );
  }

  /** One step of the handshake: feed one side's bytes, send what the gate produced, then decide. */
  #step(feed: (out: AuthOutput) => void): void {
    const out: AuthOutput = { toBus: [], toClient: [] };
    try {
      feed(out);
    } catch (error) {
      this.#send({ toBus: [], toClient: out.toClient }); // answers due before the refused line
      // Anything else would be a bug here: it still ends only this connection, never the daemon.
      this.#refuse(
        error instanceof AuthRefusal ? error : new AuthRefusal(`internal error: ${(error as Error).message}`),
      );
      return;
    }
    this.#send(out);
    const gate = this.#gate;
    if (gate.finished) this.#startMessages();
    else if (this.#heldFds.length > 0 && !gate.waitingForBus)
      this.#refuse(clientRefusal('unix fds sent before BEGIN'));
    else this.#relay.hold('toProvider', gate.waitingForBus);
  }

  #send({ toBus, toClient }: AuthOutput): void {
    const bus = this.#relay.sink('toProvider');
    const client = this.#relay.sink('toConsumer');
    for (const line of toBus) bus.forward(line);
    for (const line of toClient) client.forward(line);
  }

  /** The handshake must stop: the bus connection goes, the client gets the reason (when it caused it), then EOF. */
  #refuse(refusal: AuthRefusal): void {
    if (refusal.reply) this.#relay.sink('toProvider').reply(refusal.reply);
    this.#relay.reject('toProvider', refusal);
  }

  #startMessages(): void {
    const unixFds = this.#gate.unixFds;
    const fromClient = new DBusMessageFilter(unixFds, this.policy?.fromConsumer);
    this.#fromClient = fromClient;
    this.#fromBus = new DBusMessageFilter(unixFds, this.policy?.fromBus);
    // Messages pipelined after BEGIN were read with it: they go on first.
    const first: Chunk = { data: this.#gate.remainder(), fds: this.#heldFds.take(this.#heldFds.length) };
    if (first.data.length > 0 || first.fds.length > 0) {
      try {
        fromClient.push(first, this.#relay.sink('toProvider'));
      } catch (error) {
        this.#refuse(new AuthRefusal((error as Error).message));
        return;
      }
    }
    this.#relay.hold('toProvider', false);
    this.#handOffDue = !this.policy;
    if (this.#handOffDue) this.#queueHandOff();
  }

  /**
   * The hand-off runs in a microtask queued after the one that flushes the writes of this step. Nothing half-framed,
   * no fd waiting for its message, nothing queued to write: the addon relays the rest. Otherwise (rare: a partial
   * message pipelined after BEGIN, a full socket buffer) the filters go on, and it is tried again after the next
   * chunk either way.
   */
  #queueHandOff(): void {
    if (this.#handOffQueued) return;
    this.#handOffQueued = true;
    queueMicrotask(() => {
      this.#handOffQueued = false;
      if (this.#fromClient?.idle && this.#fromBus?.idle && this.#relay.handOff(this.relayInAddon))
        this.#handOffDue = false;
    });
  }

  #dispose(): void {
    this.#heldFds.close();
    this.#fromClient?.dispose();
    this.#fromBus?.dispose();
  }
}
