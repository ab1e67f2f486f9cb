// pv-xconnect: polls pv-ctrl for the graph, reconciles the links, serves the status API.
import type { Logger } from '../log/logger.js';
import {
  DEFAULT_MEDIATOR_SETTINGS,
  defaultMediators,
  type MediatorRegistry,
  type MediatorSettings,
} from '../mediators/registry.js';
import { DEFAULT_RELAY_LIMITS } from '../mediators/relay.js';
import { parseGraph } from '../protocols/graph/xconnect-graph.js';
import { fetchDeadlineMs, fetchGraph, MAX_GRAPH_BYTES } from './graph-client.js';
import type { LinkLimits } from './link.js';
import { hostNamespace } from './plumbing.js';
import { Reconciler } from './reconciler.js';
import { type GraphStatus, type StatusApi, startStatusApi } from './status-api.js';

export interface DaemonOptions {
  ctrlSocket: string;
  intervalMs: number;
  /** null: no status API. */
  statusSocket: string | null;
  log: Logger;
  /** Settings of the built-in mediators (daemon/options.ts); default: DEFAULT_MEDIATOR_SETTINGS. */
  settings?: MediatorSettings;
  /** Replaces the built-in mediators (tests). */
  mediators?: MediatorRegistry;
  limits?: Partial<LinkLimits>;
}

export class Daemon {
  readonly reconciler: Reconciler;
  private readonly graphStatus: GraphStatus = {
    error: null,
    lastPoll: null,
    lastSuccess: null,
    lastApplied: null,
    polls: 0,
    failures: 0,
  };
  /** The previous poll's warnings: only new ones are logged. */
  private warned = new Set<string>();
  private statusApi: StatusApi | null = null;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | null = null;
  /** A poll was asked for (SIGHUP) while one ran: another one follows it at once. */
  private pollAgain = false;
  private running = false;
  private graphApplied!: () => void;
  /** Resolves once the first graph has been applied: the daemon is ready. */
  readonly firstGraphApplied = new Promise<void>((resolve) => {
    this.graphApplied = resolve;
  });

  constructor(private readonly options: DaemonOptions) {
    const limits: LinkLimits = {
      maxConnections: 1024,
      ...DEFAULT_RELAY_LIMITS,
      retryBaseMs: Math.min(1000, options.intervalMs),
      retryMaxMs: options.intervalMs * 6,
      ...options.limits,
    };
    const mediators =
      options.mediators ?? defaultMediators(options.settings ?? DEFAULT_MEDIATOR_SETTINGS, hostNamespace());
    this.reconciler = new Reconciler(mediators, limits, options.log);
  }

  /** Serves the status API (refusing to start while another daemon answers on it), then polls. */
  async start(): Promise<void> {
    if (this.options.statusSocket) {
      this.statusApi = await startStatusApi(this.options.statusSocket, {
        links: () => this.reconciler.list(),
        graph: () => this.graphStatus,
      });
    }
    this.running = true;
    this.options.log.info('started', {
      ctrlSocket: this.options.ctrlSocket,
      intervalMs: this.options.intervalMs,
      statusSocket: this.options.statusSocket,
    });
    await this.poll();
  }

  /** Stops polling and removes every link and what it planted. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.polling;
    await this.reconciler.shutdown();
    const statusApi = this.statusApi;
    this.statusApi = null;
    await statusApi?.close();
    this.options.log.info('stopped');
  }

  /** The poller's state, as GET /graph shows it. */
  graph(): GraphStatus {
    return this.graphStatus;
  }

  /** One poll and reconcile, then the next is scheduled (polls never overlap). */
  poll(): Promise<void> {
    this.polling = this.pollOnce().finally(() => {
      this.polling = null;
      if (!this.running) return;
      const again = this.pollAgain;
      this.pollAgain = false;
      if (again) void this.poll();
      else this.timer = setTimeout(() => void this.poll(), this.options.intervalMs);
    });
    return this.polling;
  }

  /** A poll now (SIGHUP), not waiting for the interval; right after the current one if one runs. */
  pollNow(): void {
    if (!this.running) return;
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    clearTimeout(this.timer);
    void this.poll();
  }

  private async pollOnce(): Promise<void> {
    const status = this.graphStatus;
    status.polls += 1;
    status.lastPoll = new Date();
    let text: string;
    let parsed: ReturnType<typeof parseGraph>;
    try {
      text = await fetchGraph({
        socketPath: this.options.ctrlSocket,
        timeoutMs: fetchDeadlineMs(this.options.intervalMs),
        maxBytes: MAX_GRAPH_BYTES,
      });
      parsed = parseGraph(text);
    } catch (error) {
      status.failures += 1;
      const reason = (error as Error).message;
      // Logged once per distinct reason, not on every poll; the last good graph stays in force.
      if (status.error !== reason) this.options.log.warn('graph unchanged', { reason });
      status.error = reason;
      return;
    }
    if (status.error !== null) this.options.log.info('graph readable again');
    status.error = null;
    status.lastSuccess = new Date();
    for (const warning of parsed.warnings) {
      if (!this.warned.has(warning)) this.options.log.warn('graph entry skipped', { reason: warning });
    }
    this.warned = new Set(parsed.warnings);
    const result = await this.reconciler.apply(parsed.links);
    status.lastApplied = new Date();
    this.graphApplied();
    if (result.created + result.replaced + result.removed > 0) {
      this.options.log.debug('reconciled', { ...result });
    }
  }
}
