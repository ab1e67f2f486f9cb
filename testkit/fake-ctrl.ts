// A pv-ctrl stand-in for daemon tests and benches: serves GET /xconnect-graph on a Unix socket with whatever the test sets,
// including broken answers, and can go away and come back.
import { serveUnixHttp, type UnixHttpServer } from '../sim/unix-http.js';

export type CtrlAnswer =
  | { status: number; body: string }
  /** Raw bytes written on the socket, then the connection is closed (for half responses). */
  | { raw: string };

export class FakeCtrl {
  private answer: CtrlAnswer = { status: 200, body: '[]' };
  private server: UnixHttpServer | null = null;
  requests = 0;

  constructor(readonly socketPath: string) {}

  /** A started stand-in serving `links`. */
  static async serving(socketPath: string, links: unknown[]): Promise<FakeCtrl> {
    const ctrl = new FakeCtrl(socketPath);
    ctrl.setGraph(links);
    await ctrl.start();
    return ctrl;
  }

  setGraph(links: unknown[]): void {
    this.answer = { status: 200, body: JSON.stringify(links) };
  }

  setAnswer(answer: CtrlAnswer): void {
    this.answer = answer;
  }

  async start(): Promise<void> {
    this.server = await serveUnixHttp(this.socketPath, (req, res) => {
      this.requests += 1;
      const answer = this.answer;
      if ('raw' in answer) {
        req.socket.end(answer.raw);
        return;
      }
      res.writeHead(answer.status, { 'Content-Type': 'application/json' });
      res.end(answer.body);
    });
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    await server?.close();
  }
}
