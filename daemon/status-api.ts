// The status API on a Unix socket: GET /links (JSON), /metrics (Prometheus text), /health, /graph.
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Link } from './link.js';
import { createServer, type Server, type ServerResponse } from './node-http.js';

export interface GraphStatus {
  /** Why the last poll did not change the graph, or null when it succeeded. */
  error: string | null;
  lastPoll: Date | null;
  lastSuccess: Date | null;
  polls: number;
  failures: number;
}

export interface StatusSource {
  links(): Link[];
  graph(): GraphStatus;
}

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
    since: link.since.toISOString(),
    connections: {
      active: counters.connections.active,
      total: counters.connections.total,
      failed: counters.connections.failed,
    },
    bytes: { ...counters.bytes },
    fds: { ...counters.fds },
    rejected: counters.connections.rejected,
    graphError,
  };
}

export function renderMetrics(source: StatusSource): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  const links = source.links();
  const label = (link: Link, extra = '') =>
    `{consumer=${quote(link.spec.consumer)},name=${quote(link.spec.name)},type=${quote(link.spec.type)}${extra}}`;
  const perLink = (read: (link: Link) => number, extra = '') =>
    links.map((link): [string, number] => [label(link, extra), read(link)]);

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
  return `${lines.join('\n')}\n`;
}

function quote(value: string): string {
  return JSON.stringify(value);
}

export async function startStatusApi(socketPath: string, source: StatusSource): Promise<Server> {
  mkdirSync(dirname(socketPath), { recursive: true });
  rmSync(socketPath, { force: true });
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
        return send(res, 200, 'text/plain; version=0.0.4', renderMetrics(source));
      case '/health':
        return send(res, 200, 'text/plain', 'ok\n');
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return server;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
