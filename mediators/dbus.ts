// dbus: a consumer's bus connection, made to the provider's bus as the link's role.
//
// Each consumer connection gets its own connection to the provider's bus, dialled with the role's uid, gid and
// groups, so the bus's SO_PEERCRED check and its XML policy see the role. The mediator owns the SASL handshake
// (dbus-auth.ts) until BEGIN, then relays whole messages with their fds in both directions (dbus-messages.ts).
import type { Chunk, FdSocket } from '../native/fd-socket.js';
import { closeFds } from '../native/fds.js';
import { type AuthOutput, AuthRefusal, clientRefusal, SaslGate } from './dbus-auth.js';
import { linkCredentials } from './dbus-identity.js';
import { DBusMessageFilter } from './dbus-messages.js';
import { type FilterSink, relay } from './relay.js';
import { dialAndRelay } from './session.js';
import type { Credentials, LinkContext, Mediator } from './types.js';

export interface DBusLinkState {
  credentials: Credentials;
}

/** How long a refused client gets to read the reason before its socket is closed. */
const REFUSAL_LINGER_MS = 1000;

/** Sends what was queued, half-closes, and closes the socket once the peer is gone or the linger is over. */
function closeGracefully(socket: FdSocket): void {
  socket.resume(); // read (and drop) until the peer's EOF, so the socket can close itself
  socket.end();
  const linger = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
}

/** Runs the handshake of one connection, then hands both sockets to the relay with message filters. */
function mediate(consumer: FdSocket, provider: FdSocket, link: LinkContext, uid: number): void {
  const { counters, log } = link;
  const gate = new SaslGate(uid);
  // Fds that came with handshake bytes: they belong to the first messages after BEGIN, or to nobody.
  let heldFds: number[] = [];

  const send = ({ toBus, toClient }: AuthOutput) => {
    for (const line of toBus) {
      counters.bytes.toProvider += line.length;
      provider.write(line);
    }
    for (const line of toClient) {
      counters.bytes.toConsumer += line.length;
      consumer.write(line);
    }
  };

  const stop = () => {
    consumer
      .off('data', onClientData)
      .off('end', onClientGone)
      .off('error', onClientGone)
      .off('close', onClientGone);
    provider.off('data', onBusData).off('end', onBusGone).off('error', onBusGone).off('close', onBusGone);
    closeFds(heldFds);
    heldFds = [];
  };

  const refuse = (refusal: AuthRefusal) => {
    stop();
    const phase = gate.finished ? 'messages' : 'authentication';
    log.warn('connection rejected', { phase, reason: refusal.message });
    provider.destroy();
    if (refusal.reply) consumer.write(refusal.reply);
    closeGracefully(consumer);
  };

  // Every step of the handshake: feed one side's bytes, send what the gate produced, then decide.
  const step = (feed: (out: AuthOutput) => void) => {
    const out: AuthOutput = { toBus: [], toClient: [] };
    try {
      feed(out);
    } catch (error) {
      send({ toBus: [], toClient: out.toClient }); // answers due before the refused line
      // Anything else would be a bug here: it still ends only this connection, never the daemon.
      refuse(
        error instanceof AuthRefusal ? error : new AuthRefusal(`internal error: ${(error as Error).message}`),
      );
      return;
    }
    send(out);
    // Lock-step: while a line waits for the bus's reply, the client is not read.
    if (gate.finished) startMessages();
    else if (gate.waitingForBus) consumer.pause();
    else if (heldFds.length > 0) refuse(clientRefusal('unix fds sent before BEGIN'));
    else consumer.resume();
  };

  const onClientData = ({ data, fds }: Chunk) => {
    if (fds.length > 0) heldFds.push(...fds);
    step((out) => gate.fromClient(data, out));
  };

  const onBusData = ({ data, fds }: Chunk) => {
    if (fds.length > 0) {
      closeFds(fds);
      refuse(new AuthRefusal('the bus sent unix fds before BEGIN'));
      return;
    }
    step((out) => gate.fromBus(data, out));
  };

  const onClientGone = () => {
    stop();
    log.debug('client left during authentication');
    provider.destroy();
    consumer.destroy();
  };

  const onBusGone = () => {
    stop();
    log.debug('bus closed the connection during authentication');
    provider.destroy();
    closeGracefully(consumer); // the bus's last reply (REJECTED, ERROR) still reaches the client
  };

  const startMessages = () => {
    const first: Chunk = { data: gate.remainder(), fds: heldFds };
    heldFds = [];
    stop();
    const toProvider = new DBusMessageFilter(gate.unixFds);
    // Messages pipelined after BEGIN were read with it: they go on before the relay takes over.
    if (first.data.length > 0 || first.fds.length > 0) {
      const direct: FilterSink = {
        forward(data, fds) {
          counters.bytes.toProvider += data.length;
          if (fds?.length) counters.fds.toProvider += fds.length;
          provider.write(data, fds);
        },
        reply(data) {
          consumer.write(data);
        },
      };
      try {
        toProvider.push(first, direct);
      } catch (error) {
        refuse(new AuthRefusal((error as Error).message));
        return;
      }
    }
    relay(consumer, provider, {
      counters,
      limits: link.relayLimits,
      log,
      toProvider,
      toConsumer: new DBusMessageFilter(gate.unixFds),
    });
    consumer.resume();
  };

  consumer
    .on('data', onClientData)
    .on('end', onClientGone)
    .on('error', onClientGone)
    .on('close', onClientGone);
  provider.on('data', onBusData).on('end', onBusGone).on('error', onBusGone).on('close', onBusGone);
}

export const dbusMediator: Mediator<DBusLinkState> = {
  type: 'dbus',
  async add(link) {
    const credentials = await linkCredentials(link);
    link.log.info('dbus identity', { role: link.spec.role, ...credentials });
    return { credentials };
  },
  onConnection(consumer, link, { credentials }) {
    dialAndRelay(
      consumer,
      link,
      (provider) => mediate(consumer, provider, link, credentials.uid),
      credentials,
    );
  },
};
