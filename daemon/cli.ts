#!/usr/bin/env node
// The pv-xconnect executable: parse the command line, run the daemon, clean up on SIGTERM/SIGINT.
import { Daemon } from './daemon.js';
import { createLogger } from './log.js';
import { parseCli, USAGE, UsageError } from './options.js';

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

const log = createLogger({ level: options.logLevel, format: options.logFormat });
const daemon = new Daemon({
  ctrlSocket: options.ctrlSocket,
  intervalMs: options.intervalMs,
  statusSocket: options.statusSocket,
  log,
});

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info('shutting down', { signal });
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
// One link's failure must never take the daemon down: log what escaped and keep serving.
process.on('uncaughtException', (error) =>
  log.error('internal error', { error: error.stack ?? String(error) }),
);
process.on('unhandledRejection', (error) => log.error('internal error', { error: String(error) }));

daemon.start().catch((error: Error) => {
  log.error('start failed', { error: error.message });
  process.exit(1);
});
