// pvcurl against curl --unix-socket: the same requests to the same server give the same bytes out (status,
// headers with -i, binary bodies, chunked and close-delimited replies, uploads), under dash and busybox sh.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOOLS_DIR } from '../../sim/paths.js';

const PVCURL = join(TOOLS_DIR, 'pvcurl');
/** Every byte value, then a long run: crosses chunk boundaries and contains CRLFs and NULs. */
const BINARY = Buffer.concat([
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  Buffer.alloc(150_000, 0x0d),
]);

let work: string;
let httpSocket: string;
let closingSocket: string;
let http: Server;
let closing: NetServer;

interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function run(command: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { encoding: 'buffer', maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error ? Number((error as NodeJS.ErrnoException & { code: unknown }).code ?? 1) : 0;
      resolve({ code, stdout, stderr: stderr.toString() });
    });
  });
}

const SHELLS = [
  ['sh', []],
  ['busybox', ['sh']],
] as const;

/** Runs the same arguments through curl and through pvcurl under each shell; all stdouts must agree. */
async function compare(socket: string, args: string[]): Promise<Buffer> {
  // pvcurl always asks the server to close after the reply; curl is given the same request.
  const curl = await run('curl', ['-s', '-H', 'Connection: close', '--unix-socket', socket, ...args]);
  expect(curl.code).toBe(0);
  for (const [shell, prefix] of SHELLS) {
    const pvcurl = await run(shell, [...prefix, PVCURL, '-s', '--unix-socket', socket, ...args]);
    expect(pvcurl.stderr).toBe('');
    expect({ shell, code: pvcurl.code }).toEqual({ shell, code: 0 });
    expect(pvcurl.stdout.equals(curl.stdout), `${shell}: pvcurl ${args.join(' ')}`).toBe(true);
  }
  return curl.stdout;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-pvcurl-'));
  httpSocket = join(work, 'http.sock');
  closingSocket = join(work, 'closing.sock');
  writeFileSync(join(work, 'binary.bin'), BINARY);

  http = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url === '/binary') {
        // No Content-Length: Node sends it chunked.
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'X-Kind': 'chunked' });
        res.write(BINARY.subarray(0, 1000));
        res.end(BINARY.subarray(1000));
        return;
      }
      if (req.url === '/missing') {
        res.writeHead(404, 'Not Found', { 'Content-Type': 'text/plain', 'Content-Length': 10 });
        res.end('not here\r\n');
        return;
      }
      // What arrived: method, target, the headers that matter, and a digest of the body.
      const summary = JSON.stringify({
        method: req.method,
        url: req.url,
        contentType: req.headers['content-type'] ?? null,
        contentLength: req.headers['content-length'] ?? null,
        custom: req.headers['x-custom'] ?? null,
        sha256: createHash('sha256').update(body).digest('hex'),
        size: body.length,
      });
      res.writeHead(201, 'Created', { 'Content-Type': 'application/json', 'X-Multi': ['a', 'b'] });
      res.end(summary);
    });
  });
  http.on('request', (_req, res) => {
    res.sendDate = false;
  });
  await new Promise<void>((resolve) => http.listen(httpSocket, resolve));

  // A server that reads the whole request, answers without a length, and closes: the body ends at the close.
  closing = createNetServer((socket) => {
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const headEnd = received.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const length = Number(
        /content-length: *(\d+)/i.exec(received.subarray(0, headEnd).toString())?.[1] ?? 0,
      );
      if (received.length < headEnd + 4 + length) return;
      const body = received.subarray(headEnd + 4);
      socket.end(
        Buffer.concat([
          Buffer.from('HTTP/1.1 200 OK\r\nX-Body-Bytes: '),
          Buffer.from(`${length}\r\n\r\n`),
          body,
        ]),
      );
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => closing.listen(closingSocket, resolve));
});

afterAll(async () => {
  await new Promise((resolve) => http?.close(resolve));
  await new Promise((resolve) => closing?.close(resolve));
  rmSync(work, { recursive: true, force: true });
});

describe('pvcurl matches curl --unix-socket', () => {
  it('status line and headers (-i) of a plain GET', async () => {
    const out = (await compare(httpSocket, ['-i', 'http://localhost/path?q=1'])).toString();
    expect(out).toMatch(/^HTTP\/1\.1 201 Created\r\n/);
    expect(out).toContain('X-Multi: a\r\nX-Multi: b\r\n');
    expect(out).toContain('"url":"/path?q=1"');
  });

  it('the status code of an error answer (-w %{http_code}) and its body', async () => {
    const out = await compare(httpSocket, ['-w', '\\n%{http_code}\\n', 'http://localhost/missing']);
    expect(out.toString()).toBe('not here\r\n\n404\n');
  });

  it('a binary chunked body, byte for byte', async () => {
    const out = await compare(httpSocket, ['http://localhost/binary']);
    expect(out.equals(BINARY)).toBe(true);
  });

  it('a binary upload (--data-binary @file) arrives intact, with curl’s method and headers', async () => {
    const out = await compare(httpSocket, [
      '--data-binary',
      `@${join(work, 'binary.bin')}`,
      '-H',
      'X-Custom: yes',
      'http://localhost/upload',
    ]);
    expect(JSON.parse(out.toString())).toEqual({
      method: 'POST',
      url: '/upload',
      contentType: 'application/x-www-form-urlencoded',
      contentLength: String(BINARY.length),
      custom: 'yes',
      sha256: createHash('sha256').update(BINARY).digest('hex'),
      size: BINARY.length,
    });
  });

  it('-X PUT --upload-file and form data joined with & (-d a -d b)', async () => {
    const put = JSON.parse(
      (await compare(httpSocket, ['-T', join(work, 'binary.bin'), 'http://localhost/t'])).toString(),
    );
    expect(put).toMatchObject({ method: 'PUT', contentType: null, size: BINARY.length });
    const form = JSON.parse(
      (await compare(httpSocket, ['-d', 'a=1', '-d', 'b=2', 'http://localhost/f'])).toString(),
    );
    expect(form).toMatchObject({
      method: 'POST',
      size: 7,
      sha256: createHash('sha256').update('a=1&b=2').digest('hex'),
    });
  });

  it('a POST answered without a length and ended by the server closing its side', async () => {
    const out = await compare(closingSocket, [
      '-i',
      '--data-binary',
      `@${join(work, 'binary.bin')}`,
      'http://x/',
    ]);
    const head = `HTTP/1.1 200 OK\r\nX-Body-Bytes: ${BINARY.length}\r\n\r\n`;
    expect(out.subarray(0, head.length).toString()).toBe(head);
    expect(out.subarray(head.length).equals(BINARY)).toBe(true);
  });

  it('writes the body to a file with -o', async () => {
    const file = join(work, 'out.bin');
    const result = await run('sh', [
      PVCURL,
      '-s',
      '-o',
      file,
      '--unix-socket',
      httpSocket,
      'http://localhost/binary',
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout.length).toBe(0);
    expect(readFileSync(file).equals(BINARY)).toBe(true);
  });
});

describe('pvcurl errors and verbosity', () => {
  it('exits 7 like curl when the socket is missing', async () => {
    const missing = join(work, 'missing.sock');
    const curl = await run('curl', ['-s', '--unix-socket', missing, 'http://x/']);
    const pvcurl = await run('sh', [PVCURL, '-s', '--unix-socket', missing, 'http://x/']);
    expect(curl.code).toBe(7);
    expect(pvcurl.code).toBe(7);
    expect(pvcurl.stderr).toBe('');
  });

  it('-f exits 22 on a 404 without printing the body', async () => {
    const curl = await run('curl', ['-sf', '--unix-socket', httpSocket, 'http://x/missing']);
    const pvcurl = await run('sh', [PVCURL, '-sf', '--unix-socket', httpSocket, 'http://x/missing']);
    expect([curl.code, pvcurl.code]).toEqual([22, 22]);
    expect(pvcurl.stdout.length).toBe(0);
  });

  it('-v shows the request and response heads on stderr', async () => {
    const result = await run('sh', [
      PVCURL,
      '-v',
      '-d',
      'x',
      '--unix-socket',
      httpSocket,
      'http://localhost/v',
    ]);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('> POST /v HTTP/1.1\n');
    expect(result.stderr).toContain('> Content-Length: 1\n');
    expect(result.stderr).toContain('< HTTP/1.1 201 Created\n');
  });

  it('rejects unknown options with exit 2', async () => {
    const result = await run('sh', [PVCURL, '--bogus', '--unix-socket', httpSocket, 'http://x/']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown option --bogus');
  });
});
