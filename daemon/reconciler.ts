// Level-triggered reconciliation of the desired links (the graph) with the running ones, by key and spec hash.
// A second pass over the same graph touches nothing.

import type { Logger } from '../log/logger.js';
import type { MediatorRegistry } from '../mediators/registry.js';
import { type LinkSpec, linkKey, specHash } from '../protocols/graph/xconnect-graph.js';
import { Link, type LinkLimits } from './link.js';
import { Pins } from './plumbing.js';

/** Link changes in flight at once: each takes a native thread, and a provider's listen backlog is finite. */
const MAX_CONCURRENT_CHANGES = 32;

async function runLimited(tasks: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const task = tasks[next++] as () => Promise<void>;
      await task();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}

export interface ReconcileResult {
  created: number;
  replaced: number;
  removed: number;
  unchanged: number;
}

export class Reconciler {
  private readonly links = new Map<string, Link>();

  constructor(
    private readonly mediators: MediatorRegistry,
    private readonly limits: LinkLimits,
    private readonly log: Logger,
    /** The pinned namespaces of the links' ends. */
    readonly pins = new Pins(),
  ) {}

  list(): Link[] {
    return [...this.links.values()];
  }

  async apply(specs: readonly LinkSpec[]): Promise<ReconcileResult> {
    // A link whose pinned process is gone goes pending now (one system call per pinned process).
    this.pins.sweep();
    const result: ReconcileResult = { created: 0, replaced: 0, removed: 0, unchanged: 0 };
    const wanted = new Set<string>();
    const work: (() => Promise<void>)[] = [];

    for (const spec of specs) {
      const key = linkKey(spec);
      wanted.add(key);
      const current = this.links.get(key);
      if (current && current.hash === specHash(spec)) {
        result.unchanged += 1;
        if (current.watched) work.push(() => current.refresh());
        continue;
      }
      const next = new Link(spec, this.mediators.get(spec.type), this.limits, this.pins, this.log);
      this.links.set(key, next);
      if (current) {
        result.replaced += 1;
        this.log.info('link replaced', { consumer: spec.consumer, link: spec.name });
        // Make-before-break: the new listener is renamed over the target before the old one goes; the old
        // link's unlink then finds a different inode and leaves the target alone.
        work.push(() => next.start().then(() => current.stop()));
      } else {
        result.created += 1;
        work.push(() => next.start());
      }
    }

    for (const [key, link] of this.links) {
      if (wanted.has(key)) continue;
      this.links.delete(key);
      result.removed += 1;
      work.push(() =>
        link
          .stop()
          .then(() => this.log.info('link removed', { consumer: link.spec.consumer, link: link.spec.name })),
      );
    }

    await runLimited(work, MAX_CONCURRENT_CHANGES);
    return result;
  }

  /** Removes every link (and what it planted). */
  async shutdown(): Promise<void> {
    await this.apply([]);
  }
}
