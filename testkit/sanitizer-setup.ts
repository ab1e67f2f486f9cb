// Setup of the sanitizer run (vitest.asan.config.ts): this test process was started with the ASan runtime
// preloaded; the programs the tests start (dbus-daemon, weston, socat, ...) are not instrumented and must not get it.
import { readFileSync } from 'node:fs';
import { binding } from '../native/binding.js';

delete process.env.LD_PRELOAD;
if (!process.env.PVX_NATIVE_ADDON)
  throw new Error('the sanitizer run needs PVX_NATIVE_ADDON (run it through .ci/asan)');
// Loaded now, from the sanitizer build, before any test runs; and the sanitizers are really there.
void binding;
const maps = readFileSync('/proc/self/maps', 'utf8');
for (const runtime of ['libasan', 'libubsan', process.env.PVX_NATIVE_ADDON]) {
  if (!maps.includes(runtime)) throw new Error(`the sanitizer run has no ${runtime} loaded`);
}
