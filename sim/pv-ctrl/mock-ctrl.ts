// The mock pv-ctrl: HTTP on Unix sockets with upstream's endpoints, shapes, status codes and messages
// (docs/simulator.md lists each remaining difference and why).
//
//   GET  /xconnect-graph     mgmt   the graph; 500 {"Error":"State not loaded yet"} until the stack is up
//   GET  /containers         mgmt   [{name, group, status, status_goal, restart_policy, roles, user_stopped?}]
//   PUT  /containers/{name}  mgmt   {"action": "start"|"stop"|"restart"} → 200, empty body; acted on after the answer
//   GET  /groups             mgmt   [{name, status_goal, restart_policy, status}]
//   GET  /daemons            mgmt   [{name, pid, respawn}]
//   PUT  /daemons/{name}     mgmt   {"action": "start"|"stop"} → 200, empty body (another action: nothing, still 200)
//   POST /signal             any    {"type": "ready", "payload": ""} from a container whose status goal is READY
//
// Upstream knows who calls from the peer's pid (SO_PEERCRED → cgroup → container). The mock gives each container
// its own socket (bind-mounted at /pantavisor/pv-ctrl) and knows the caller by the socket a request came in on;
// the host's socket is `_pv_`, privileged like a container with the mgmt role.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HOST } from '../../protocols/graph/xconnect-graph.js';
import type { DaemonState } from '../supervisor.js';
import { serveUnixHttp, type UnixHttpServer } from '../unix-http.js';
import type { GraphEntry } from './graph-builder.js';
import type { ContainerAction } from './platforms.js';

export interface ContainerStatus {
  name: string;
  group: string;
  status: string;
  status_goal: string;
  restart_policy: string;
  roles: string[];
  /** Only for restart policy `container`; a string, as upstream serializes it. */
  user_stopped?: 'true' | 'false';
}

export interface GroupStatus {
  name: string;
  status_goal: string;
  restart_policy: string;
  status: string;
}

/** What the mock serves, and whom it asks to act. Refusals are thrown as CtrlError. */
export interface CtrlBackend {
  graph(): Promise<GraphEntry[]>;
  containers(): Promise<ContainerStatus[]>;
  groups(): Promise<GroupStatus[]>;
  /** 404 for an unknown container, 403 for one whose restart policy is not `container`. */
  checkControllable(name: string): void;
  /** Decides at once (400 when the container's status does not allow the action), acts afterwards. */
  containerAction(name: string, action: ContainerAction): void;
  daemons(): DaemonState[];
  /** Acts on a known daemon; `action` may be anything (upstream ignores what it does not know). */
  daemonAction(name: string, action: string | null): void;
  /** 500 "Signal not expected from this platform" when the caller may not send it. */
  signal(caller: string, type: string, payload: string | null): void;
}

export class CtrlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Who is on the other end of a socket. */
export interface Caller {
  name: string;
  mgmt: boolean;
}

export const STATE_NOT_LOADED = 'State not loaded yet';

/** Methods libevent's evhttp lets through to pv-ctrl; others get its 501 page. */
const HTTP_METHODS = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE'];
/** Bodies pv-ctrl reads for actions and signals, and its answer for a larger one. */
const ACTION_MAX_BYTES = 1024;
const SIGNAL_MAX_BYTES = 4096;
const TOO_LARGE = 'Not enough disk space available';
/** What the mock reads at most before giving up on a body (anything above the limits above is refused anyway). */
const READ_MAX_BYTES = 64 * 1024;

/** Upstream endpoints the mock does not simulate: named as such in the 400 answer. */
const NOT_SIMULATED = [
  'buildinfo',
  'steps',
  'objects',
  'config',
  'config2',
  'device-meta',
  'user-meta',
  'drivers',
  'commands',
  'storage',
  'wakelock',
];

interface Request {
  req: IncomingMessage;
  caller: Caller;
  /** The path segments after the endpoint's fixed part (`{}` placeholders). */
  params: string[];
}

interface Reply {
  status: number;
  /** JSON text, or null for upstream's empty "ok". */
  body: string | null;
}

interface Endpoint {
  path: string;
  method: string;
  mgmt: boolean;
  /** Answers 500 "State not loaded yet" until the stack is up. */
  state: boolean;
  handle(request: Request): Promise<Reply>;
}

const ok = (): Reply => ({ status: 200, body: null });
const json = (value: unknown): Reply => ({ status: 200, body: JSON.stringify(value) });

export class MockCtrl {
  private readonly servers = new Map<string, UnixHttpServer>();
  private readonly endpoints: Endpoint[];
  /** False while the stack boots: state endpoints answer 500 like pv-ctrl before its state is loaded. */
  ready = false;

  constructor(
    readonly socketPath: string,
    backend: CtrlBackend,
  ) {
    this.endpoints = [
      {
        path: '/xconnect-graph',
        method: 'GET',
        mgmt: true,
        state: true,
        handle: async () => json(await backend.graph()),
      },
      {
        path: '/containers',
        method: 'GET',
        mgmt: true,
        state: true,
        handle: async () => json(await backend.containers()),
      },
      {
        path: '/containers/{}',
        method: 'PUT',
        mgmt: true,
        state: true,
        handle: async ({ req, params: [name] }) => {
          backend.checkControllable(name as string);
          const body = await readBody(req, ACTION_MAX_BYTES);
          const action = jsonField(body, 'action', true);
          if (action === null) throw new CtrlError(400, "Missing 'action' field");
          if (action !== 'start' && action !== 'stop' && action !== 'restart') {
            throw new CtrlError(400, "Invalid action. Use 'start', 'stop', or 'restart'");
          }
          backend.containerAction(name as string, action);
          return ok();
        },
      },
      {
        path: '/groups',
        method: 'GET',
        mgmt: true,
        state: true,
        handle: async () => json(await backend.groups()),
      },
      {
        path: '/daemons',
        method: 'GET',
        mgmt: true,
        state: false,
        handle: async () => json(backend.daemons()),
      },
      {
        path: '/daemons/{}',
        method: 'PUT',
        mgmt: true,
        state: false,
        handle: async ({ req, params: [name] }) => {
          if (!backend.daemons().some((daemon) => daemon.name === name)) {
            throw new CtrlError(404, 'Daemon not found');
          }
          const body = await readBody(req, ACTION_MAX_BYTES);
          backend.daemonAction(name as string, jsonField(body, 'action', true));
          return ok();
        },
      },
      {
        path: '/signal',
        method: 'POST',
        mgmt: false,
        state: true,
        handle: async ({ req, caller }) => {
          const body = await readBody(req, SIGNAL_MAX_BYTES, 'Signal has bad format');
          const type = jsonField(body, 'type', false);
          if (type === null) throw new CtrlError(400, 'Signal has bad format');
          backend.signal(caller.name, type, jsonField(body, 'payload', false));
          return ok();
        },
      },
    ];
  }

  /** Listens on the host's socket (`_pv_`, privileged). */
  async start(): Promise<void> {
    await this.listen(this.socketPath, { name: HOST, mgmt: true });
  }

  /** Listens on a container's own socket; requests on it are that container's. */
  async listen(socketPath: string, caller: Caller): Promise<void> {
    const server = await serveUnixHttp(socketPath, (req, res) => {
      this.handle(req, res, caller).catch((error: unknown) => {
        if (error instanceof CtrlError) return sendError(res, error.status, error.message);
        sendError(res, 500, (error as Error).message);
      });
    });
    this.servers.set(socketPath, server);
  }

  async stop(): Promise<void> {
    const servers = [...this.servers.values()];
    this.servers.clear();
    await Promise.all(servers.map((server) => server.close()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse, caller: Caller): Promise<void> {
    // pv-ctrl drops a request whose Host names anything but localhost (the port does not count).
    const host = (req.headers.host ?? '').replace(/:\d*$/, '');
    if (host !== '' && host !== 'localhost') {
      req.socket.destroy();
      return;
    }
    const method = req.method ?? 'GET';
    if (!HTTP_METHODS.includes(method)) return sendNotImplemented(res);
    const uri = req.url ?? '/';
    const segments = new URL(uri, 'http://localhost').pathname.split('/').filter(Boolean);
    const matches = this.endpoints
      .map((endpoint) => ({ endpoint, params: matchPath(endpoint.path, segments) }))
      .filter((match): match is { endpoint: Endpoint; params: string[] } => match.params !== null);
    if (matches.length === 0) {
      const simulated = !NOT_SIMULATED.includes(segments[0] ?? '');
      throw new CtrlError(400, `unknown endpoint: ${uri}${simulated ? '' : ' (not simulated by pvx-sim)'}`);
    }
    const match = matches.find(({ endpoint }) => endpoint.method === method);
    if (!match) throw new CtrlError(400, 'Method not supported for this endpoint');
    if (match.endpoint.mgmt && !caller.mgmt) {
      // Two spellings upstream: its router (paths with a name in them) and each fixed endpoint's own check.
      const custom = match.endpoint.path.includes('{}');
      throw new CtrlError(403, `Request not sent from ${custom ? '' : 'a '}mgmt platform`);
    }
    if (match.endpoint.state && !this.ready) throw new CtrlError(500, STATE_NOT_LOADED);
    const reply = await match.endpoint.handle({ req, caller, params: match.params });
    const text = reply.body ?? '';
    res.writeHead(reply.status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(text),
    });
    res.end(method === 'HEAD' ? undefined : text);
  }
}

/** The `{}` parameters of `pattern` for these segments, or null when it does not match. */
function matchPath(pattern: string, segments: readonly string[]): string[] | null {
  const parts = pattern.split('/').filter(Boolean);
  if (parts.length !== segments.length) return null;
  const params: string[] = [];
  for (const [index, part] of parts.entries()) {
    const segment = segments[index] as string;
    if (part === '{}') params.push(decodeURIComponent(segment));
    else if (part !== segment) return null;
  }
  return params;
}

/** The whole body; larger than `max` is upstream's 507. */
async function readBody(req: IncomingMessage, max: number, unreadable = 'No data'): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > READ_MAX_BYTES) break;
      chunks.push(chunk);
    }
  } catch {
    throw new CtrlError(400, unreadable);
  }
  if (size > max) throw new CtrlError(507, TOO_LARGE);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A top-level string field of a JSON body, or null when absent. An empty body has no fields (upstream's
 * tokenizer finds none); text that is not JSON is "Invalid JSON" where upstream says so (`strict`), else absent.
 */
function jsonField(body: string, key: string, strict: boolean): string | null {
  if (body.trim() === '') return null;
  let document: unknown;
  try {
    document = JSON.parse(body);
  } catch {
    if (strict) throw new CtrlError(400, 'Invalid JSON');
    return null;
  }
  const value = (document as Record<string, unknown> | null)?.[key];
  if (value === undefined || value === null || typeof value === 'object') return null;
  return String(value);
}

/** Upstream's error answer: `{"Error":"..."}`, JSON, no trailing newline. */
function sendError(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify({ Error: message });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** libevent's own page for a method it does not dispatch. */
function sendNotImplemented(res: ServerResponse): void {
  const text =
    '<HTML><HEAD>\n<TITLE>501 Not Implemented</TITLE>\n</HEAD><BODY>\n<H1>Not Implemented</H1>\n</BODY></HTML>\n';
  res.writeHead(501, { 'Content-Type': 'text/html', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
