// The container runtime: Docker through testcontainers. No image is ever pulled: one small base image is built
// locally from an empty rootfs skeleton; the host's /usr is bind-mounted read-only, so every Debian tool of the host
// (sh, socat, dbus-daemon…) runs inside, and the Node.js binary that runs the simulator is mounted in as `node`
// (the host's /usr may hold another Node, or none). Every container has network `none` and the labels below, which
// is how `pvx-sim down` finds exactly what the simulator created.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContainerRuntimeClient } from 'testcontainers';

// Ryuk (the reaper) would be pulled from a registry; the simulator removes its containers itself. The Docker
// host override skips testcontainers' gateway probe, which needs the `bridge` network that dockerd runs without
// here (--bridge=none) and is useless anyway: nothing is reached over IP.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= 'localhost';
const { getContainerRuntimeClient } = await import('testcontainers');

export const LABEL = 'pvx-sim';
export const STACK_LABEL = 'pvx-sim.stack';
export const IMAGE = 'pvx-sim-base:1';
/** PATH inside containers: the simulator's tools first, then its Node.js. */
export const TOOLS_MOUNT = '/opt/pvx/bin';
export const NODE_MOUNT = '/opt/pvx/node/bin';
export const CONTAINER_PATH = `${TOOLS_MOUNT}:${NODE_MOUNT}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`;
/** The running Node.js binary, mounted in every container as `${NODE_MOUNT}/node`. */
const NODE_BINARY = { source: process.execPath, target: `${NODE_MOUNT}/node`, readOnly: true };

export interface BindMount {
  source: string;
  target: string;
  readOnly: boolean;
}

export interface ContainerPlan {
  /** Stack instance the container belongs to (label and name prefix). */
  instance: string;
  name: string;
  command: string[];
  mounts: BindMount[];
  env: Record<string, string>;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface SimContainerInfo {
  id: string;
  name: string;
  instance: string;
  running: boolean;
}

export function containerName(instance: string, name: string): string {
  return `pvx-sim-${instance}-${name}`;
}

export class DockerRuntime {
  private constructor(
    private readonly client: ContainerRuntimeClient,
    /** The base image's tag: IMAGE, or another one for a test that must not touch the shared image. */
    readonly image: string,
  ) {}

  static async connect(image = IMAGE): Promise<DockerRuntime> {
    try {
      return new DockerRuntime(await getContainerRuntimeClient(), image);
    } catch (error) {
      throw new Error(
        `cannot reach Docker (${(error as Error).message}); is dockerd running? ` +
          '(bash .ci/setup starts it: dockerd --bridge=none --iptables=false)',
      );
    }
  }

  async imageExists(): Promise<boolean> {
    return (
      (await this.client.container.dockerode.listImages({ filters: { reference: [this.image] } })).length > 0
    );
  }

  /** Builds the base image unless present: `FROM scratch` + a skeleton whose /bin, /lib… point into /usr. */
  async ensureImage(): Promise<'built' | 'present'> {
    if (await this.imageExists()) return 'present';
    const context = mkdtempSync(join(tmpdir(), 'pvx-sim-image-'));
    try {
      const rootfs = join(context, 'rootfs');
      for (const dir of [
        'usr',
        'etc',
        'proc',
        'sys',
        'dev',
        'run',
        'tmp',
        'app',
        'pantavisor',
        'root',
        'var/lib',
      ]) {
        mkdirSync(join(rootfs, dir), { recursive: true });
      }
      mkdirSync(join(rootfs, TOOLS_MOUNT), { recursive: true });
      for (const link of ['bin', 'sbin', 'lib', 'lib64']) symlinkSync(`usr/${link}`, join(rootfs, link));
      // libdbus and others still name /var/run/… (e.g. the system bus socket).
      symlinkSync('../run', join(rootfs, 'var', 'run'));
      writeFileSync(join(context, 'Dockerfile'), 'FROM scratch\nCOPY rootfs/ /\n');
      // The tag as a label too: two tags built alike would otherwise be one image, and removing one only untags.
      await this.client.image.build(context, {
        t: this.image,
        labels: { [LABEL]: '1', 'pvx-sim.image': this.image },
      });
    } finally {
      rmSync(context, { recursive: true, force: true });
    }
    // testcontainers does not surface build errors: check that the image is there.
    if (!(await this.imageExists()))
      throw new Error(`building image ${this.image} failed (see dockerd's log)`);
    return 'built';
  }

  /**
   * Creates and starts one container; resolves with its id. The image may go between a caller's ensureImage() and
   * this start (another simulator's `down` removing it, see removeImage): then it is built again and the start
   * retried, so no caller has to order itself against the others.
   */
  async start(plan: ContainerPlan): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.create(plan);
      } catch (error) {
        if (attempt >= 3 || !/no such image/i.test((error as Error).message)) throw error;
        await this.ensureImage();
      }
    }
  }

  /**
   * Creates and starts through Docker's API directly: testcontainers' GenericContainer adds image checks, an inspect
   * and a wait strategy per container, which cost more than the start itself when a stack starts eight at once.
   */
  private async create(plan: ContainerPlan): Promise<string> {
    const container = await this.client.container.dockerode.createContainer({
      name: containerName(plan.instance, plan.name),
      Hostname: plan.name,
      Image: this.image,
      Cmd: plan.command,
      Env: Object.entries({ PATH: CONTAINER_PATH, ...plan.env }).map(([name, value]) => `${name}=${value}`),
      Labels: { [LABEL]: '1', [STACK_LABEL]: plan.instance, 'pvx-sim.container': plan.name },
      HostConfig: {
        NetworkMode: 'none',
        Binds: [...plan.mounts, NODE_BINARY].map(
          (mount) => `${mount.source}:${mount.target}:${mount.readOnly ? 'ro' : 'rw'}`,
        ),
        Tmpfs: { '/run': 'rw,mode=0755', '/tmp': 'rw,mode=1777' },
      },
    });
    try {
      await container.start();
    } catch (error) {
      await container.remove({ force: true }).catch(() => {});
      throw error;
    }
    return container.id;
  }

  /** Init pid on the host, 0 when the container does not run. */
  async pid(id: string): Promise<number> {
    const info = await this.client.container.inspect(this.client.container.getById(id));
    return info.State.Running ? info.State.Pid : 0;
  }

  async startExisting(id: string): Promise<void> {
    await this.client.container.start(this.client.container.getById(id));
  }

  /** Stops at once: container programs are simulations, a grace period only slows the stack down. */
  async stop(id: string): Promise<void> {
    await this.client.container.stop(this.client.container.getById(id), { timeout: 0 });
  }

  async restart(id: string): Promise<void> {
    await this.client.container.restart(this.client.container.getById(id), { timeout: 0 });
  }

  /** Runs `sh -c command` inside, killed after `timeoutSeconds` (exit code 124, as `timeout` reports it). */
  async exec(id: string, command: string, timeoutSeconds: number): Promise<ExecResult> {
    const result = await this.client.container.exec(this.client.container.getById(id), [
      'timeout',
      '-s',
      'KILL',
      String(Math.max(1, Math.ceil(timeoutSeconds))),
      'sh',
      '-c',
      command,
    ]);
    // `timeout -s KILL` exits 137 when it had to kill: report it as timeout does by default.
    return {
      exitCode: result.exitCode === 137 ? 124 : result.exitCode,
      stdout: result.stdout,
      stderr: result.stderr,
    };
  }

  /** Containers the simulator created: all of them, or one stack instance's. */
  async list(instance?: string): Promise<SimContainerInfo[]> {
    const label = instance === undefined ? [`${LABEL}=1`] : [`${LABEL}=1`, `${STACK_LABEL}=${instance}`];
    const containers = await this.client.container.dockerode.listContainers({
      all: true,
      filters: { label },
    });
    return containers.map((container) => ({
      id: container.Id,
      name: container.Labels['pvx-sim.container'] ?? container.Names[0] ?? container.Id,
      instance: container.Labels[STACK_LABEL] ?? '',
      running: container.State === 'running',
    }));
  }

  async remove(id: string): Promise<void> {
    await this.client.container.dockerode.getContainer(id).remove({ force: true, v: true });
  }

  /**
   * Removes the base image unless a container (of any simulator instance or test, running or not) uses it; false
   * when one does. Docker itself refuses, atomically, to remove an image a container refers to: no check-then-act
   * race with a container being created. A start that loses the image anyway rebuilds it (see start).
   */
  async removeImage(): Promise<boolean> {
    try {
      await this.client.container.dockerode.getImage(this.image).remove({ force: false });
      return true;
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode;
      if (status === 404) return true;
      if (status === 409) return false;
      throw error;
    }
  }

  /** What the container's program has printed so far (stdout and stderr, interleaved as written). */
  async logs(id: string): Promise<string> {
    const raw = (await this.client.container.dockerode
      .getContainer(id)
      .logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    return demultiplex(raw);
  }
}

/**
 * Docker's log stream of a container without a TTY: frames of an 8-byte header (stream, 3 zero bytes, big-endian
 * length) and that many bytes.
 */
export function demultiplex(raw: Buffer): string {
  const parts: Buffer[] = [];
  let at = 0;
  while (at + 8 <= raw.length) {
    const length = raw.readUInt32BE(at + 4);
    parts.push(raw.subarray(at + 8, at + 8 + length));
    at += 8 + length;
  }
  return Buffer.concat(parts).toString('utf8');
}
