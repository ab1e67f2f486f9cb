// A pv-ctrl stand-in for daemon tests: serves GET /xconnect-graph on a Unix socket with whatever the test sets,
// including broken answers, and can go away and come back.
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';

export type CtrlAnswer =
  | { status: number; body: string }
  /** Raw bytes written on the socket, then the connection is closed (for half responses). */
  | { raw: string };

export class FakeCtrl {
  private answer: CtrlAnswer = { status: 200, body: '[]' };
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  requests = 0;

  constructor(readonly socketPath: string) {}

  setGraph(links: unknown[]): void {
    this.answer = { status: 200, body: JSON.stringify(links) };
  }

  setAnswer(answer: CtrlAnswer): void {
    this.answer = answer;
  }

  async start(): Promise<void> {
    rmSync(this.socketPath, { force: true });
    const server = createServer((req, res) => {
      this.requests += 1;
      const answer = this.answer;
      if ('raw' in answer) {
        req.socket.end(answer.raw);
        return;
      }
      res.writeHead(answer.status, { 'Content-Type': 'application/json' });
      res.end(answer.body);
    });
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(this.socketPath, resolve));
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}
