// Imported first by the executable, before anything else is evaluated: from here on SIGUSR1 can never open
// Node's inspector (by default it listens, unauthenticated, on 127.0.0.1:9229, in a root process). Node >= 22.14
// also has --disable-sigusr1, which closes the short window before this module runs (see docs/daemon.md).
process.on('SIGUSR1', () => {
  process.stderr.write('pv-xconnect: SIGUSR1 ignored (the inspector is never opened by a signal)\n');
});
