// dbus-broker without its launcher (dbus-broker-launch needs systemd): the broker gets one end of a socketpair as
// its controller connection, and this process, as the controller, hands it a listening socket planted inside a
// provider's namespace, with a policy that allows everything (the tests need identities, not rules).
import { type ChildProcess, spawn } from 'node:child_process';
import { closeFd } from '../native/fds.js';
import { listenIn } from '../native/namespace.js';
import { variant } from '../protocols/dbus/index.js';
import { DBusPeer } from './dbus-peer.js';
import { socketPairFds } from './sockets.js';

/** The policy type of dbus-broker 33's AddListener: per-uid batches, gid/uid-range batches, SELinux, AppArmor. */
const BATCH = 'bta(btbs)a(btssssuutt)a(btssssuutt)';
const POLICY_SIGNATURE = `(a(u(${BATCH}))a(buu(${BATCH}))a(ss)bs)`;
const ANY_FDS = [0n, 2n ** 64n - 1n];
/** verdict allow, priority 1, for any name, path, interface, member, message type and number of fds. */
const ALLOW_ANY_MESSAGE = [true, 1n, '', '', '', '', 0, 0, ...ANY_FDS];
const ALLOW_EVERYTHING = [
  // The fallback batch ((uid_t)-1): connect, own any name (prefix ""), send and receive anything.
  [[0xffffffff, [true, 1n, [[true, 1n, true, '']], [ALLOW_ANY_MESSAGE], [ALLOW_ANY_MESSAGE]]]],
  [],
  [],
  false,
  'system',
];

export interface Broker {
  stop(): Promise<void>;
}

/** Starts dbus-broker with its listener at `path` inside the namespace of `pid`. */
export async function startBroker(pid: number, path: string): Promise<Broker> {
  const { fd: listener } = await listenIn({ pid, path, mode: 0o666 });
  const [ours, theirs] = socketPairFds();
  let broker: ChildProcess;
  try {
    broker = spawn('dbus-broker', ['--controller', '3', '--machine-id', '0123456789abcdef0123456789abcdef'], {
      stdio: ['ignore', 'ignore', 'pipe', theirs],
    });
  } finally {
    closeFd(theirs);
  }
  let output = '';
  broker.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => broker.once('exit', () => resolve()));
  let controller: DBusPeer | undefined;
  try {
    controller = await DBusPeer.connect(ours, { unixFds: true, hello: false });
    controller.serve(() => ({
      error: 'org.freedesktop.DBus.Error.UnknownMethod',
      message: 'not a launcher',
    }));
    await controller.call({
      path: '/org/bus1/DBus/Broker',
      interface: 'org.bus1.DBus.Broker',
      member: 'AddListener',
      signature: 'ohv',
      body: ['/org/bus1/DBus/Listener/0', 0, variant(POLICY_SIGNATURE, ALLOW_EVERYTHING)],
      fds: [listener],
    });
  } catch (error) {
    if (controller === undefined) closeFd(listener); // never handed over
    broker.kill('SIGKILL');
    await exited;
    throw new Error(`dbus-broker did not take the listener: ${(error as Error).message}\n${output}`);
  }
  const connected = controller;
  return {
    async stop() {
      connected.close(); // the broker exits when its controller goes away
      broker.kill('SIGTERM');
      await exited;
    },
  };
}
