#!/usr/bin/env node
// The pv-xconnect executable: parse the command line, run the daemon, clean up on SIGTERM/SIGINT, poll at once on
// SIGHUP, tell a service manager (NOTIFY_SOCKET) when it is ready and when it stops. The signal guard comes first
// (see its header).
import './signal-guard.js';
import './supported-node.js';
import { createLogger } from '../log/logger.js';
import { packageVersion } from '../native/package-root.js';
import { parseCli, USAGE, UsageError } from './options.js';

/** Shutdown removes every link; should anything hang, the process still exits after this long. */
const SHUTDOWN_LIMIT_MS = 30_000;

let options: ReturnType<typeof parseCli>;
try {
  options = parseCli(process.argv.slice(2), process.env);
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  process.stderr.write(`pv-xconnect: ${error.message}\n\n${USAGE}`);
  process.exit(2);
}
if (options.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

if (options.version) {
  process.stdout.write(`${packageVersion()}\n`);
  process.exit(0);
}

// The daemon and the native addon load only now, so that an addon that does not load here (another architecture,
// a missing build) is one line on stderr and exit 1, not a stack trace.
let loaded: [typeof import('./daemon.js'), typeof import('../native/notify.js')];
try {
  loaded = await Promise.all([import('./daemon.js'), import('../native/notify.js')]);
} catch (error) {
  process.stderr.write(`${(error as Error).message.split('\n')[0]}\n`);
  process.exit(1);
}
const [{ Daemon }, { notifyServiceManager }] = loaded;

const log = createLogger({ level: options.logLevel, format: options.logFormat });
const daemon = new Daemon({
  ctrlSocket: options.ctrlSocket,
  intervalMs: options.intervalMs,
  statusSocket: options.statusSocket,
  settings: options.settings,
  log,
});

const notifySocket = process.env.NOTIFY_SOCKET;
const notify = (state: string) => {
  if (!notifySocket) return;
  try {
    notifyServiceManager(notifySocket, state);
  } catch (error) {
    log.warn('service manager notification failed', { state, error: (error as Error).message });
  }
};
void daemon.firstGraphApplied.then(() => notify('READY=1'));

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info('shutting down', { signal });
  notify('STOPPING=1');
  setTimeout(() => {
    log.error('shutdown did not finish in time, exiting', { limitMs: SHUTDOWN_LIMIT_MS });
    process.exit(1);
  }, SHUTDOWN_LIMIT_MS).unref();
  daemon.stop().then(
    () => process.exit(0),
    (error: Error) => {
      log.error('shutdown failed', { error: error.message });
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
// SIGHUP: a graph poll now, and nothing else (without a handler Node would die with no cleanup).
process.on('SIGHUP', () => {
  log.info('polling now', { signal: 'SIGHUP' });
  daemon.pollNow();
});
// One link's failure must never take the daemon down: log what escaped and keep serving.
process.on('uncaughtException', (error) =>
  log.error('internal error', { error: error.stack ?? String(error) }),
);
process.on('unhandledRejection', (error) => log.error('internal error', { error: String(error) }));

daemon.start().catch((error: Error) => {
  log.error('start failed', { error: error.message });
  process.exit(1);
});
