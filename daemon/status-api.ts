// The status API on a Unix socket: GET /links (JSON), /metrics (Prometheus text), /health, /ready, /graph.
// The socket is mode 0600 whatever the umask, in a directory that is ours (created 0700, or already owned by
// us and not world-writable); a second daemon is refused while the first answers on it; a stale one is taken over.
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { closeFd } from '../native/fds.js';
import { PinnedNamespace } from '../native/namespace.js';
import type { Link } from './link.js';
import { createServer, type ServerResponse } from './node-http.js';

export interface GraphStatus {
  /** Why the last poll did not change the graph, or null when it succeeded. */
  error: string | null;
  lastPoll: Date | null;
  lastSuccess: Date | null;
  /** When a graph was last applied to the links (null: never yet). */
  lastApplied: Date | null;
  polls: number;
  failures: number;
}

export interface StatusSource {
  links(): Link[];
  graph(): GraphStatus;
}

/** How long the status server waits on a client; it is local, but a stuck client must not hold a slot. */
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_CONNECTIONS = 64;
/** How long a daemon already on the socket has to answer before the socket is taken for stale. */
const PROBE_TIMEOUT_MS = 2000;

/** One entry of GET /links: the contract's fields, plus the graph's last error so a stale graph is visible. */
export function linkStatus(link: Link, graphError: string | null) {
  const { spec, counters } = link;
  return {
    consumer: spec.consumer,
    name: spec.name,
    target: spec.target,
    type: spec.type,
    role: spec.role,
    provider: spec.provider,
    state: link.state,
    error: link.error,
    note: link.note,
    since: new Date(link.since).toISOString(),
    connections: {
      active: counters.connections.active,
      total: counters.connections.total,
      failed: counters.connections.failed,
    },
    bytes: { ...counters.bytes },
    fds: { ...counters.fds },
    rejected: counters.connections.rejected,
    denied: counters.denied,
    graphError,
  };
}

/** Whether the daemon is ready: a graph has been applied and the last fetch succeeded. */
export function readiness(graph: GraphStatus): { ready: boolean; reason: string | null } {
  if (graph.lastApplied === null) {
    return { ready: false, reason: graph.error ?? 'no graph applied yet' };
  }
  if (graph.error !== null) return { ready: false, reason: `last graph fetch failed: ${graph.error}` };
  return { ready: true, reason: null };
}

/** A label value as the text format writes it: only backslash, double quote and newline are escaped. */
export function labelValue(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** HELP text: backslash and newline escaped. */
function helpText(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

type Sample = [labels: string, value: number];

/** The standard process_* metrics, from what the process and /proc/self already know. */
function processMetrics(): [name: string, type: string, help: string, value: number][] {
  const cpu = process.cpuUsage();
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const maxFds = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? Number.NaN);
  // /proc/self/stat field 23 is the virtual memory size in bytes (fields counted after the comm's ")").
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const virtual = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[20] ?? Number.NaN);
  return [
    [
      'process_cpu_seconds_total',
      'counter',
      'User and system CPU time, seconds.',
      (cpu.user + cpu.system) / 1e6,
    ],
    ['process_resident_memory_bytes', 'gauge', 'Resident memory size, bytes.', process.memoryUsage.rss()],
    ['process_virtual_memory_bytes', 'gauge', 'Virtual memory size, bytes.', virtual],
    ['process_open_fds', 'gauge', 'Open file descriptors.', readdirSync('/proc/self/fd').length - 1],
    ['process_max_fds', 'gauge', 'Maximum number of open file descriptors.', maxFds],
    [
      'process_start_time_seconds',
      'gauge',
      'Start time, seconds since the Unix epoch.',
      performance.timeOrigin / 1000,
    ],
  ];
}

export function renderMetrics(source: StatusSource): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: Sample[]) => {
    lines.push(`# HELP ${name} ${helpText(help)}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  const links = source.links();
  // The link key (consumer, name, target) is in the labels: every series is unique.
  const label = (link: Link, extra = '') => {
    const { consumer, name, target, type, provider } = link.spec;
    return `{consumer=${labelValue(consumer)},name=${labelValue(name)},target=${labelValue(target)},type=${labelValue(type)},provider=${labelValue(provider)}${extra}}`;
  };
  const perLink = (read: (link: Link) => number, extra = '') =>
    links.map((link): Sample => [label(link, extra), read(link)]);

  metric(
    'pvx_links',
    'gauge',
    'Links by state.',
    (['pending', 'active', 'failed'] as const).map((state) => [
      `{state="${state}"}`,
      links.filter((link) => link.state === state).length,
    ]),
  );
  metric(
    'pvx_link_up',
    'gauge',
    '1 when the link is active.',
    perLink((l) => (l.state === 'active' ? 1 : 0)),
  );
  metric(
    'pvx_link_connections_active',
    'gauge',
    'Open connections.',
    perLink((l) => l.counters.connections.active),
  );
  metric(
    'pvx_link_connections_total',
    'counter',
    'Accepted connections.',
    perLink((l) => l.counters.connections.total),
  );
  metric(
    'pvx_link_connections_rejected_total',
    'counter',
    'Connections closed at once because the link was at its cap.',
    perLink((l) => l.counters.connections.rejected),
  );
  metric(
    'pvx_link_connections_failed_total',
    'counter',
    'Accepted connections closed because the provider could not be dialled.',
    perLink((l) => l.counters.connections.failed),
  );
  metric(
    'pvx_link_denied_total',
    'counter',
    "Calls, requests or binds refused by the provider's access policy.",
    perLink((l) => l.counters.denied),
  );
  metric('pvx_link_bytes_total', 'counter', 'Bytes relayed.', [
    ...perLink((l) => l.counters.bytes.toProvider, ',direction="to_provider"'),
    ...perLink((l) => l.counters.bytes.toConsumer, ',direction="to_consumer"'),
  ]);
  metric('pvx_link_fds_total', 'counter', 'File descriptors relayed.', [
    ...perLink((l) => l.counters.fds.toProvider, ',direction="to_provider"'),
    ...perLink((l) => l.counters.fds.toConsumer, ',direction="to_consumer"'),
  ]);
  const graph = source.graph();
  metric('pvx_graph_polls_total', 'counter', 'Polls of pv-ctrl.', [['', graph.polls]]);
  metric('pvx_graph_poll_failures_total', 'counter', 'Polls that left the graph unchanged.', [
    ['', graph.failures],
  ]);
  metric('pvx_graph_ok', 'gauge', '1 when the last poll succeeded.', [['', graph.error === null ? 1 : 0]]);
  for (const [name, type, help, value] of processMetrics()) metric(name, type, help, [['', value]]);
  return `${lines.join('\n')}\n`;
}

export class StatusSocketError extends Error {
  override name = 'StatusSocketError';
}

/** The socket's directory: created 0700 (whatever the umask), or an existing one owned by us, not world-writable. */
function prepareDirectory(dir: string): void {
  if (mkdirSync(dir, { recursive: true, mode: 0o700 }) !== undefined) chmodSync(dir, 0o700);
  const st = lstatSync(dir);
  const euid = process.geteuid?.() ?? 0;
  if (!st.isDirectory()) throw new StatusSocketError(`status socket directory ${dir} is not a directory`);
  if (st.uid !== euid || (st.mode & 0o002) !== 0) {
    throw new StatusSocketError(
      `status socket directory ${dir} is not safe (owner ${st.uid}, mode ${(st.mode & 0o7777).toString(8)}): ` +
        `it must be owned by uid ${euid} and not world-writable`,
    );
  }
}

/** Whether something answers on socketPath: then another daemon runs; a refused or absent socket is stale. */
function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    const done = (answer: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(true), PROBE_TIMEOUT_MS);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export interface StatusApi {
  /** Stops serving and removes the socket, if it is still ours. */
  close(): Promise<void>;
}

export async function startStatusApi(socketPath: string, source: StatusSource): Promise<StatusApi> {
  prepareDirectory(dirname(socketPath));
  if (await answers(socketPath)) {
    throw new StatusSocketError(`another pv-xconnect is running: ${socketPath} answers`);
  }
  const server = createServer((req, res) => {
    if (req.method !== 'GET') return send(res, 405, 'text/plain', 'method not allowed\n');
    const graph = source.graph();
    switch (req.url) {
      case '/links':
        if (graph.error) res.setHeader('X-PVX-Graph-Error', encodeURIComponent(graph.error));
        return send(
          res,
          200,
          'application/json',
          `${JSON.stringify(source.links().map((link) => linkStatus(link, graph.error)))}\n`,
        );
      case '/graph':
        return send(res, 200, 'application/json', `${JSON.stringify(graph)}\n`);
      case '/metrics':
        return send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', renderMetrics(source));
      case '/health':
        return send(res, 200, 'text/plain', 'ok\n');
      case '/ready': {
        const { ready, reason } = readiness(graph);
        return ready ? send(res, 200, 'text/plain', 'ready\n') : send(res, 503, 'text/plain', `${reason}\n`);
      }
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  });
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  server.setTimeout(REQUEST_TIMEOUT_MS);
  server.maxConnections = MAX_CONNECTIONS;
  // Planted like a link's socket: bound under a temporary name with exactly mode 0600, renamed over the path (a
  // stale socket is replaced atomically).
  const host = PinnedNamespace.pin(0);
  try {
    const { fd, ino } = await host.listen(socketPath, { mode: 0o600 });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) => {
        closeFd(fd);
        reject(error);
      });
      server.listen({ fd }, () => resolve());
    });
    return {
      close: async () => {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        // A server adopted from an fd does not remove its socket: we do, only while it is still ours.
        await host.unlink(socketPath, ino).catch(() => false);
        host.release();
      },
    };
  } catch (error) {
    host.release();
    throw error;
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
