// A live view of a running stack: every tick it reads the containers and daemons (as pv-ctrl serves them) and
// pv-xconnect's links (its status API), turns what changed into events (link failed, provider gone, container
// restarted, daemon restarted) and hands the whole picture to its subscribers: the live page, `pvx-sim up`.

import type { SimEvent } from './events.js';
import { LINK_COLOURS } from './graph-picture.js';
import type { GraphEntry } from './pv-ctrl/graph-builder.js';
import type { ContainerStatus } from './pv-ctrl/mock-ctrl.js';
import type { LinkStatus, Simulator } from './simulator.js';
import type { DaemonState } from './supervisor.js';

export interface Snapshot {
  stack: string;
  instance: string;
  time: string;
  /** pv-xconnect's poll interval, seconds. */
  interval: number;
  containers: ContainerStatus[];
  daemons: DaemonState[];
  /** The graph pv-ctrl serves now (the mesh's shape, with pids). */
  graph: GraphEntry[];
  /** pv-xconnect's links; null while its status API does not answer. */
  links: LinkStatus[] | null;
  colours: Readonly<Record<string, string>>;
  events: SimEvent[];
}

const SHOWN_EVENTS = 50;

export class LiveMonitor {
  private timer: NodeJS.Timeout | null = null;
  private last: Snapshot | null = null;
  private readonly listeners = new Set<(snapshot: Snapshot) => void>();
  private readonly linkStates = new Map<string, string>();
  private daemonPid: number | null = null;
  private ticking: Promise<void> | null = null;

  /** @param periodMs how often to look; default half pv-xconnect's interval (so a change shows within one). */
  constructor(
    private readonly sim: Simulator,
    private readonly periodMs = Math.max(250, (sim.intervalSeconds * 1000) / 2),
  ) {}

  start(): void {
    if (this.timer) return;
    const loop = () => {
      this.ticking = this.tick().then(
        () => {},
        () => {},
      );
      this.ticking.finally(() => {
        this.ticking = null;
        if (this.timer) this.timer = setTimeout(loop, this.periodMs);
      });
    };
    this.timer = setTimeout(loop, 0);
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.ticking;
  }

  latest(): Snapshot | null {
    return this.last;
  }

  /** Calls `listener` with each new snapshot; returns the unsubscribe function. */
  subscribe(listener: (snapshot: Snapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** One look at the stack; resolves with the snapshot it made. */
  async tick(): Promise<Snapshot> {
    const sim = this.sim;
    const [containers, graph, links] = await Promise.all([
      sim.containers(),
      sim.graph(),
      sim.links().catch(() => null),
    ]);
    const daemons = sim.daemons();
    this.noteDaemon(sim.daemon.state().pid);
    if (links) this.noteLinks(links);
    const snapshot: Snapshot = {
      stack: sim.stack.name,
      instance: sim.instance,
      time: new Date().toISOString(),
      interval: sim.intervalSeconds,
      containers,
      daemons,
      graph,
      links,
      colours: LINK_COLOURS,
      events: sim.events.recent(SHOWN_EVENTS),
    };
    this.last = snapshot;
    for (const listener of this.listeners) listener(snapshot);
    return snapshot;
  }

  private noteDaemon(pid: number): void {
    if (this.daemonPid !== null && pid !== this.daemonPid) {
      if (pid > 0)
        this.sim.events.add(
          'daemon',
          `pv-xconnect ${this.daemonPid > 0 ? 'restarted' : 'started'} (pid ${pid})`,
        );
      else this.sim.events.add('daemon', 'pv-xconnect is not running', true);
    }
    this.daemonPid = pid;
  }

  private noteLinks(links: readonly LinkStatus[]): void {
    const seen = new Set<string>();
    for (const link of links) {
      const key = `${link.consumer}/${link.name} → ${link.provider}`;
      seen.add(key);
      const state = `${link.state}${link.error ? `: ${link.error}` : ''}`;
      if (this.linkStates.get(key) === state) continue;
      this.linkStates.set(key, state);
      this.sim.events.add('link', `${key} ${state}`, link.state !== 'active');
    }
    for (const key of [...this.linkStates.keys()]) {
      if (seen.has(key)) continue;
      this.linkStates.delete(key);
      this.sim.events.add('link', `${key} removed`);
    }
  }
}
