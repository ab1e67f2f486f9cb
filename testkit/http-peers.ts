// Real HTTP servers for REST link tests: a Node http server that records and echoes what it received (served from
// the test process on a socket planted inside a container), and nginx running inside a container.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { listenIn, statIn } from '../native/namespace.js';
import { fieldNameKey } from '../protocols/http/index.js';
import type { Container } from './container.js';
import { eventually, PATIENCE_MS } from './mesh.js';

/** One request as the server saw it; the echo server answers with it as JSON (one line). */
export interface SeenRequest {
  /** Which connection of the server it came on (1, 2, ...). */
  connection: number;
  method: string;
  url: string;
  /** Field lines as received, names as sent. */
  headers: [string, string][];
  trailers: [string, string][];
  bodyBytes: number;
  bodySha256: string;
}

export interface EchoServer {
  requests: SeenRequest[];
  close(): Promise<void>;
}

function pairs(raw: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i] as string, raw[i + 1] as string]);
  return out;
}

/** The values of the fields a lenient backend would read as `name` (any case, `_` or `.` for `-`). */
export function fieldValues(headers: readonly [string, string][], name: string): string[] {
  const key = fieldNameKey(name);
  return headers.filter(([field]) => fieldNameKey(field) === key).map(([, value]) => value);
}

/**
 * A Node http server on a socket planted at `path` inside the namespace of `pid`. Every request is answered with
 * what was seen of it: 200, or 426 when it asked for an upgrade. With `tunnel`, upgrade requests are switched
 * instead (101) and the connection then echoes raw bytes.
 */
export async function startEchoServer(pid: number, path: string, tunnel = false): Promise<EchoServer> {
  const { fd } = await listenIn({ pid, path });
  const requests: SeenRequest[] = [];
  const connectionIds = new WeakMap<Socket, number>();
  const sockets = new Set<Socket>();
  let connections = 0;
  const seen = (req: IncomingMessage, bodyBytes: number, bodySha256: string): SeenRequest => {
    const request = {
      connection: connectionIds.get(req.socket) ?? 0,
      method: req.method ?? '',
      url: req.url ?? '',
      headers: pairs(req.rawHeaders),
      trailers: pairs(req.rawTrailers),
      bodyBytes,
      bodySha256,
    };
    requests.push(request);
    return request;
  };
  const server = createServer((req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (data: Buffer) => {
      hash.update(data);
      bytes += data.length;
    });
    req.on('end', () => {
      const request = seen(req, bytes, hash.digest('hex'));
      res.writeHead(req.headers.upgrade ? 426 : 200, { 'Content-Type': 'application/json' });
      res.end(`${JSON.stringify(request)}\n`);
    });
  });
  server.on('connection', (socket: Socket) => {
    connections += 1;
    connectionIds.set(socket, connections);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  if (tunnel) {
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      seen(req, 0, '');
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${req.headers.upgrade}\r\n\r\n`,
      );
      if (head.length > 0) socket.write(head);
      socket.on('data', (data: Buffer) => socket.write(data));
      socket.on('end', () => socket.end());
    });
  }
  await new Promise<void>((resolve) => server.listen({ fd }, resolve));
  return {
    requests,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * nginx inside `container`, serving on the Unix socket `path`: every request is answered 200 with the identity
 * fields as nginx reads them (`$http_x_pv_client`, `$http_x_pv_role`). `underscores_in_headers on` makes nginx
 * read `X_PV_Client` as `X-PV-Client`, so a look-alike that got through would show.
 */
export async function startNginx(container: Container, path: string): Promise<void> {
  const config = `
daemon off;
master_process off;
user root;
pid /tmp/nginx.pid;
error_log /tmp/nginx-error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path /tmp/nginx-body;
  proxy_temp_path /tmp/nginx-proxy;
  fastcgi_temp_path /tmp/nginx-fastcgi;
  uwsgi_temp_path /tmp/nginx-uwsgi;
  scgi_temp_path /tmp/nginx-scgi;
  underscores_in_headers on;
  server {
    listen unix:${path};
    location / { return 200 "client=$http_x_pv_client role=$http_x_pv_role\\n"; }
  }
}
`;
  const written = await container.exec(['sh', '-c', 'cat > /tmp/nginx.conf'], { input: config });
  if (written.code !== 0) throw new Error(`nginx config: ${written.stderr}`);
  const nginx = container.spawn(['nginx', '-e', '/tmp/nginx-error.log', '-c', '/tmp/nginx.conf']);
  let stderr = '';
  nginx.stderr?.on('data', (data: Buffer) => {
    stderr += data.toString();
  });
  await eventually(
    () => {
      if (nginx.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
      return statIn({ pid: container.pid, path }).then((stat) => stat.type === 'socket');
    },
    PATIENCE_MS,
    'nginx to listen',
  );
}
