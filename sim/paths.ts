// Where the simulator finds its parts (the repository's stacks, tools and built daemon) and where it keeps the
// state of a running stack on the host.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: the first folder above this module with a package.json (works from sim/ and dist/sim/). */
function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('pvx-sim: cannot find the package root (no package.json above sim/)');
    dir = parent;
  }
  return dir;
}

export const PACKAGE_ROOT = findPackageRoot();
export const STACKS_DIR = join(PACKAGE_ROOT, 'sim', 'stacks');
export const TOOLS_DIR = join(PACKAGE_ROOT, 'tools');
/** The compiled daemon: the simulator always runs the real pv-xconnect of this checkout. */
export const DAEMON_CLI = join(PACKAGE_ROOT, 'dist', 'daemon', 'cli.js');
/** The compiled pvx-sim, for `up --detach` (which re-runs it in the background). */
export const SIM_CLI = join(PACKAGE_ROOT, 'dist', 'sim', 'cli.js');

/** Host state of all running stacks; overridable for tests and for machines where /run is not writable. */
export const STATE_ROOT = process.env.PVX_SIM_STATE ?? '/run/pvx-sim';

/** The host paths of one running stack instance. */
export function instancePaths(instance: string) {
  const root = join(STATE_ROOT, instance);
  return {
    root,
    /** The host's pv-ctrl socket (caller `_pv_`, privileged). */
    ctrlSocket: join(root, 'pv', 'pv-ctrl'),
    /** A container's own pv-ctrl socket folder, bind-mounted at /pantavisor: the socket tells the mock who calls. */
    containerCtrlDir: (container: string) => join(root, 'containers', container, 'pantavisor'),
    statusSocket: join(root, 'pv-xconnect', 'status.sock'),
    daemonLog: join(root, 'pv-xconnect.log'),
    /** pid of the pvx-sim process that owns the instance (the one `down` asks to tear it down). */
    pidFile: join(root, 'sim.pid'),
    /** Log of a background (`up --detach`) pvx-sim; beside the state folder, which bring-up recreates. */
    simLog: join(STATE_ROOT, `${instance}.log`),
    /** Written once the instance is up (holds the live page's address): what `up --detach` waits for. */
    readyFile: join(root, 'ready'),
    /** The hosted system bus: its configuration, generated policy, private passwd and socket. */
    hostedBusDir: join(root, 'pv-dbus'),
    hostedBusLog: join(root, 'pv-dbus.log'),
    containerEtc: (container: string) => join(root, 'containers', container, 'etc'),
  };
}

export type InstancePaths = ReturnType<typeof instancePaths>;
