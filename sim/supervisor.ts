// Supervises one managed daemon (the real pv-xconnect) as a child process, as Pantavisor's init does: respawned
// whenever it dies, unless it was stopped on purpose (`PUT /daemons/pv-xconnect {"action":"stop"}`).
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export interface SupervisorOptions {
  name: string;
  command: string;
  args: string[];
  /** stdout and stderr of every incarnation are appended here. */
  logFile: string;
  /** Pause before a respawn, so a daemon that dies at start does not spin. Default 200 ms. */
  respawnDelayMs?: number;
}

export interface DaemonState {
  name: string;
  /** pid of the running process; 0 before the first start and while a respawn is due; -1 once it exited for good. */
  pid: number;
  respawn: boolean;
}

export class Supervisor {
  private child: ChildProcess | null = null;
  private respawn = false;
  private respawnTimer: NodeJS.Timeout | null = null;
  /** Upstream's pid of a daemon that exited while respawn was off. */
  private exitedForGood = false;
  constructor(private readonly options: SupervisorOptions) {}

  get name(): string {
    return this.options.name;
  }

  state(): DaemonState {
    const pid = this.child?.pid ?? (this.exitedForGood ? -1 : 0);
    return { name: this.options.name, pid, respawn: this.respawn };
  }

  /** Enables respawn and starts the daemon unless it runs. */
  start(): void {
    this.respawn = true;
    if (!this.child && !this.respawnTimer) this.spawnChild();
  }

  /**
   * Disables respawn and stops the daemon: SIGTERM at once, SIGKILL after `graceMs`; resolves once it exited.
   */
  async stop(graceMs = 5000): Promise<void> {
    this.respawn = false;
    if (this.respawnTimer) clearTimeout(this.respawnTimer);
    this.respawnTimer = null;
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(killer);
  }

  private spawnChild(): void {
    const log = openSync(this.options.logFile, 'a');
    const child = spawn(this.options.command, this.options.args, { stdio: ['ignore', log, log] });
    closeSync(log);
    this.child = child;
    child.once('error', () => {});
    child.once('exit', () => {
      this.child = null;
      this.exitedForGood = !this.respawn;
      if (!this.respawn) return;
      this.respawnTimer = setTimeout(() => {
        this.respawnTimer = null;
        if (this.respawn && !this.child) this.spawnChild();
      }, this.options.respawnDelayMs ?? 200);
    });
  }
}
