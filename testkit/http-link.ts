// The rest mediator on one connection without namespaces: the consumer and the provider are socket pairs held by
// the test, so it sees exactly the bytes each side receives and when.

import type { Fields, Logger } from '../log/logger.js';
import { DEFAULT_RELAY_LIMITS } from '../mediators/relay.js';
import { restMediator } from '../mediators/rest.js';
import type { LinkContext, LinkCounters, Namespace, Refusal } from '../mediators/types.js';
import { type Chunk, FdSocket } from '../native/fd-socket.js';
import { closeFd } from '../native/fds.js';
import type { Narrowing } from '../protocols/graph/allow.js';
import type { LinkSpec } from '../protocols/graph/xconnect-graph.js';
import { PATIENCE_MS } from './mesh.js';
import { socketPair, socketPairFds } from './sockets.js';

/** Everything a socket received, with ways to wait for more. */
export class Inbox {
  private readonly parts: Buffer[] = [];
  /** Each returns true once it is satisfied (or failed) and can be dropped. */
  private waiters: (() => boolean)[] = [];
  length = 0;
  fds = 0;
  /** The peer half-closed, or the socket closed. */
  ended = false;

  constructor(socket: FdSocket) {
    socket.on('data', ({ data, fds }: Chunk) => {
      this.parts.push(data);
      this.length += data.length;
      this.fds += fds.length;
      for (const fd of fds) closeFd(fd);
      this.wake();
    });
    socket.on('error', () => {});
    for (const event of ['end', 'close'] as const) {
      socket.on(event, () => {
        this.ended = true;
        this.wake();
      });
    }
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }

  text(): string {
    return this.bytes().toString('latin1');
  }

  /** Resolves once `check` holds; fails with `what` if it does not within the tests' patience or the stream ends first. */
  until(check: (inbox: Inbox) => boolean, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for ${what}: ${this.peek()}`)),
        PATIENCE_MS,
      );
      const test = () => {
        if (check(this)) {
          clearTimeout(timer);
          resolve();
          return true;
        }
        if (this.ended) {
          clearTimeout(timer);
          reject(new Error(`the stream ended before ${what}: ${this.peek()}`));
          return true;
        }
        return false;
      };
      if (!test()) this.waiters.push(test);
    });
  }

  untilText(text: string): Promise<void> {
    return this.until((inbox) => inbox.text().includes(text), JSON.stringify(text));
  }

  untilLength(length: number): Promise<void> {
    return this.until((inbox) => inbox.length >= length, `${length} bytes`);
  }

  untilEnd(): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for the end: ${this.peek()}`)),
        PATIENCE_MS,
      );
      this.waiters.push(() => {
        if (!this.ended) return false;
        clearTimeout(timer);
        resolve();
        return true;
      });
    });
  }

  private wake(): void {
    this.waiters = this.waiters.filter((waiter) => !waiter());
  }

  private peek(): string {
    return JSON.stringify(this.text().slice(0, 300));
  }
}

export interface CapturedLog {
  level: string;
  event: string;
  fields?: Fields;
}

export function capturingLogger(lines: CapturedLog[]): Logger {
  const log = (level: string) => (event: string, fields?: Fields) => {
    lines.push({ level, event, fields });
  };
  const logger: Logger = {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: () => logger,
  };
  return logger;
}

export interface RestConnection {
  /** The consumer's end, as a client holds it. */
  client: FdSocket;
  /** The provider's end, as a server holds it. */
  server: FdSocket;
  /** What the client received. */
  atClient: Inbox;
  /** What the server received. */
  atServer: Inbox;
  counters: LinkCounters;
  log: CapturedLog[];
  /** What the link reported as refused by its access policy, in order. */
  refusals: Refusal[];
  /** Closes the client, server and consumer ends; resolves once the relay has closed the provider's end too. */
  close(): Promise<void>;
}

export const TEST_SPEC: LinkSpec = {
  consumer: 'app',
  consumerPid: 0,
  provider: 'svc',
  providerPid: 0,
  name: 'api',
  type: 'rest',
  role: 'reader',
  interface: 'rest',
  target: '/run/pv/services/api.sock',
  socket: '/run/svc/api.sock',
  uid: null,
  allow: undefined,
  credentials: 'root',
};

const unusedNamespace = new Proxy({} as Namespace, {
  get() {
    throw new Error('the rest mediator opened a namespace');
  },
});

/**
 * One consumer connection through the rest mediator to a provider connection, both ends held by the test. `narrowings`
 * is what the access policy lets the link's role do (null: no narrowing).
 */
export async function restConnection(
  spec: Partial<LinkSpec> = {},
  narrowings: readonly Narrowing[] | null = null,
): Promise<RestConnection> {
  const [client, consumerEnd] = socketPair();
  // The provider's end is the mediator's once dialled (its relay closes it); the server's is ours.
  const [providerEnd, serverFd] = socketPairFds();
  const server = new FdSocket(serverFd);
  const log: CapturedLog[] = [];
  const counters: LinkCounters = {
    connections: { active: 0, total: 0, rejected: 0, failed: 0 },
    bytes: { toProvider: 0, toConsumer: 0 },
    fds: { toProvider: 0, toConsumer: 0 },
    denied: 0,
  };
  const refusals: Refusal[] = [];
  const link: LinkContext = {
    spec: { ...TEST_SPEC, ...spec },
    log: capturingLogger(log),
    counters,
    consumer: unusedNamespace,
    provider: unusedNamespace,
    relayLimits: DEFAULT_RELAY_LIMITS,
    narrowings,
    dialProvider: async () => providerEnd,
    dialProviderNow: () => null,
    relayInAddon: () => {
      throw new Error('a REST link relays in JavaScript');
    },
    note: () => {},
    refused: (refusal) => {
      counters.denied += 1;
      refusals.push(refusal);
    },
  };
  const state = await restMediator.add(link);
  restMediator.onConnection?.(consumerEnd, link, state);
  const atClient = new Inbox(client);
  const atServer = new Inbox(server);
  return {
    client,
    server,
    atClient,
    atServer,
    counters,
    log,
    refusals,
    async close() {
      client.destroy();
      consumerEnd.destroy();
      // The relay closes the provider's end once the consumer's is gone: the server reads its end then.
      await atServer.untilEnd().catch(() => {});
      server.destroy();
    },
  };
}
