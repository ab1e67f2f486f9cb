// Headless weston inside a test container, and wayland-info's global list as data.
import type { ChildProcess } from 'node:child_process';
import { statIn } from '../native/namespace.js';
import type { Container } from './container.js';
import { eventually, PATIENCE_MS } from './mesh.js';

/** The runtime dir weston gets inside its container (under the container's private /run). */
export const WESTON_RUNTIME_DIR = '/run/weston';
/** Headless weston: no input devices, hence no wl_seat. */
export const WESTON_SOCKET = `${WESTON_RUNTIME_DIR}/wayland-0`;
/** Weston's X11 backend on an Xvfb inside the container: a wl_seat with a real keyboard and its xkb keymap. */
export const WESTON_X11_SOCKET = `${WESTON_RUNTIME_DIR}/wayland-x11`;

export interface Weston {
  process: ChildProcess;
  /** Everything weston printed so far. */
  output(): string;
}

const BACKENDS = {
  headless: `exec env XDG_RUNTIME_DIR=${WESTON_RUNTIME_DIR} weston --backend=headless-backend.so --socket=wayland-0`,
  // Xvfb on display :5, in the container's private /tmp; weston starts once the X socket is there.
  x11:
    'Xvfb :5 -screen 0 1024x768x24 -nolisten tcp >/dev/null 2>&1 & ' +
    'while [ ! -e /tmp/.X11-unix/X5 ]; do sleep 0.05; done; ' +
    `exec env DISPLAY=:5 XDG_RUNTIME_DIR=${WESTON_RUNTIME_DIR} weston --backend=x11-backend.so --socket=wayland-x11`,
};

/** Starts weston inside `container` (which needs a private /tmp for x11) and waits for its socket. */
export async function startWeston(
  container: Container,
  backend: keyof typeof BACKENDS = 'headless',
): Promise<Weston> {
  const socket = backend === 'headless' ? WESTON_SOCKET : WESTON_X11_SOCKET;
  const child = container.spawn([
    'sh',
    '-c',
    `mkdir -p -m 0700 ${WESTON_RUNTIME_DIR} && ${BACKENDS[backend]} --idle-time=0 --no-config`,
  ]);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  await eventually(
    () =>
      statIn({ pid: container.pid, path: socket }).then(
        (stat) => stat.type === 'socket',
        () => false,
      ),
    PATIENCE_MS,
    `weston's socket (${output})`,
  );
  return { process: child, output: () => output };
}

export interface ListedGlobal {
  interface: string;
  version: number;
  name: number;
}

/** The globals in wayland-info's output: `interface: 'wl_shm', version: 1, name: 10`. */
export function parseWaylandInfo(output: string): ListedGlobal[] {
  const globals: ListedGlobal[] = [];
  for (const match of output.matchAll(/interface: '([^']+)',\s+version:\s+(\d+),\s+name:\s+(\d+)/g)) {
    globals.push({ interface: match[1] as string, version: Number(match[2]), name: Number(match[3]) });
  }
  return globals;
}

/** A shell command line for a container that runs `command` as a client of the compositor socket at `display`. */
export function clientCommand(display: string, command: string): string[] {
  return [
    'sh',
    '-c',
    `mkdir -p -m 0700 /run/xdg && export XDG_RUNTIME_DIR=/run/xdg WAYLAND_DISPLAY=${display} && ${command}`,
  ];
}
