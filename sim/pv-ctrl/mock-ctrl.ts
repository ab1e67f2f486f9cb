// The mock pv-ctrl: HTTP/1.1 on a Unix socket with upstream's endpoints and shapes.
//
//   GET /xconnect-graph              the graph (500 {"Error":"State not loaded yet"} until the stack is up)
//   GET /containers                  [{name, group, status, restart_policy, roles}]
//   GET /containers/{name}           one of them
//   PUT /containers/{name}           {"action": "start"|"stop"|"restart"}
//   GET /daemons                     [{name, pid, respawn}]
//   PUT /daemons/{name}              {"action": "start"|"stop"}: stop = kill, no respawn; start = respawn
//
// Errors are `{"Error": "..."}`: 404 for unknown names and paths, 400 for a bad body, 405 for a wrong method.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DaemonState } from '../supervisor.js';
import { serveUnixHttp, type UnixHttpServer } from '../unix-http.js';
import type { GraphEntry } from './graph-builder.js';

export type ContainerAction = 'start' | 'stop' | 'restart';
export const CONTAINER_ACTIONS: readonly ContainerAction[] = ['start', 'stop', 'restart'];

export interface ContainerStatus {
  name: string;
  group: string;
  /** INSTALLED (never started), STARTING, STARTED, STOPPING, STOPPED. */
  status: string;
  restart_policy: string;
  roles: string[];
}

/** What the mock serves, and whom it asks to act. */
export interface CtrlBackend {
  graph(): Promise<GraphEntry[]>;
  containers(): Promise<ContainerStatus[]>;
  /** Throws CtrlError for a refused action. */
  containerAction(name: string, action: ContainerAction): Promise<void>;
  daemons(): DaemonState[];
  daemonAction(name: string, action: 'start' | 'stop'): Promise<void>;
}

export class CtrlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_BODY = 64 * 1024;

export class MockCtrl {
  private server: UnixHttpServer | null = null;
  /** False while the stack boots: the graph answers 500 like pv-ctrl before its state is loaded. */
  ready = false;

  constructor(
    readonly socketPath: string,
    private readonly backend: CtrlBackend,
  ) {}

  async start(): Promise<void> {
    this.server = await serveUnixHttp(this.socketPath, (req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        const status = error instanceof CtrlError ? error.status : 500;
        send(res, status, { Error: (error as Error).message });
      });
    });
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    await server?.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://pv-ctrl').pathname;
    const [collection, item, ...rest] = path.split('/').filter(Boolean).map(decodeURIComponent);
    if (rest.length > 0 || collection === undefined) throw new CtrlError(404, `no such endpoint: ${path}`);
    const method = req.method ?? 'GET';

    if (collection === 'xconnect-graph' && item === undefined) {
      allow(method, ['GET']);
      if (!this.ready) throw new CtrlError(500, 'State not loaded yet');
      return send(res, 200, await this.backend.graph());
    }
    if (collection === 'containers') {
      const containers = await this.backend.containers();
      if (item === undefined) {
        allow(method, ['GET']);
        return send(res, 200, containers);
      }
      const container = containers.find((entry) => entry.name === item);
      if (!container) throw new CtrlError(404, `container '${item}' not found`);
      allow(method, ['GET', 'PUT']);
      if (method === 'GET') return send(res, 200, container);
      const action = await readAction(req, CONTAINER_ACTIONS);
      await this.backend.containerAction(item, action);
      return send(res, 200, { name: item, action });
    }
    if (collection === 'daemons') {
      const daemons = this.backend.daemons();
      if (item === undefined) {
        allow(method, ['GET']);
        return send(res, 200, daemons);
      }
      const daemon = daemons.find((entry) => entry.name === item);
      if (!daemon) throw new CtrlError(404, `daemon '${item}' not found`);
      allow(method, ['GET', 'PUT']);
      if (method === 'GET') return send(res, 200, daemon);
      const action = await readAction(req, ['start', 'stop'] as const);
      await this.backend.daemonAction(item, action);
      return send(
        res,
        200,
        this.backend.daemons().find((entry) => entry.name === item),
      );
    }
    throw new CtrlError(404, `no such endpoint: ${path}`);
  }
}

function allow(method: string, methods: string[]): void {
  if (!methods.includes(method)) throw new CtrlError(405, `method ${method} not allowed here`);
}

async function readAction<T extends string>(req: IncomingMessage, actions: readonly T[]): Promise<T> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new CtrlError(413, 'body too large');
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new CtrlError(400, 'body must be JSON: {"action": "..."}');
  }
  const action = (body as { action?: unknown } | null)?.action;
  if (typeof action !== 'string' || !(actions as readonly string[]).includes(action)) {
    throw new CtrlError(400, `action must be one of ${actions.join(', ')}`);
  }
  return action as T;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
