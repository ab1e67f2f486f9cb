// The rest mediator on single connections (socket pairs, no namespaces): stamping, normalized framing, pipelining
// order, 400s, upgrades and CONNECT, held bytes, fds, half-close.
import { afterEach, describe, expect, it } from 'vitest';
import { identityOf, restMediator } from '../../mediators/rest.js';
import { badRequest } from '../../mediators/rest-connection.js';
import { HttpParseError } from '../../protocols/http/index.js';
import { type RestConnection, restConnection, TEST_SPEC } from '../../testkit/http-link.js';
import { fileWithContent, loopTurns, openFdCount, settled } from '../../testkit/mesh.js';

const STAMP = 'X-PV-Client: app\r\nX-PV-Role: reader\r\n';
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

let connections: RestConnection[] = [];

async function connect(): Promise<RestConnection> {
  const connection = await restConnection();
  connections.push(connection);
  return connection;
}

afterEach(async () => {
  await Promise.all(connections.map((connection) => connection.close()));
  connections = [];
});

function send(connection: RestConnection, text: string): void {
  connection.client.write(Buffer.from(text, 'latin1'));
}

function reject(code: ConstructorParameters<typeof HttpParseError>[0]): string {
  return badRequest(new HttpParseError(code, '')).toString('latin1');
}

describe('the rest mediator', () => {
  it('stamps the identity and removes forged copies in any spelling, and from Connection', async () => {
    const c = await connect();
    send(
      c,
      'GET /a?b=1 HTTP/1.1\r\nHost: api\r\nX-PV-Client: evil\r\nx-pv-role: admin\r\nX_PV_Client: evil2\r\n' +
        'x.pv.role: admin2\r\nX-Pv-RoLe: admin3\r\nConnection: keep-alive, X-PV-Client, x_pv_role\r\nAccept: */*\r\n\r\n',
    );
    await c.atServer.untilText('\r\n\r\n');
    expect(c.atServer.text()).toBe(
      `GET /a?b=1 HTTP/1.1\r\nHost: api\r\nConnection: keep-alive\r\nAccept: */*\r\n${STAMP}\r\n`,
    );
    // The response passes through byte for byte.
    const response = 'HTTP/1.1 200 OK\r\nX-Odd:  spaced \r\nContent-Length: 2\r\n\r\nok';
    c.server.write(Buffer.from(response, 'latin1'));
    await c.atClient.untilLength(response.length);
    expect(c.atClient.text()).toBe(response);
  });

  it('stamps every pipelined request, forged on a later one too, and keeps responses in order', async () => {
    const c = await connect();
    send(
      c,
      'GET /1 HTTP/1.1\r\nHost: a\r\n\r\n' +
        'POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-PV-Role: admin\r\n\r\nhello' +
        'GET /3 HTTP/1.1\r\nHost: a\r\nX_PV_CLIENT: root\r\nConnection: X-PV-Role\r\n\r\n',
    );
    const expected =
      `GET /1 HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n` +
      `POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n${STAMP}\r\nhello` +
      `GET /3 HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(expected.length);
    expect(c.atServer.text()).toBe(expected);
    c.server.write(Buffer.from(OK + OK + OK));
    await c.atClient.untilLength(OK.length * 3);
    expect(c.atClient.text()).toBe(OK + OK + OK);
  });

  it('re-frames a chunked body as clean chunks and strips identity trailers', async () => {
    const c = await connect();
    send(c, 'POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n');
    send(c, '3;ext=1\r\nabc\r\n0000a\r\n0123456789\r\n');
    send(c, '0\r\nX-Sum: 1\r\nX-PV-Client: forged\r\nx_pv_role: admin\r\n\r\n');
    const expected =
      `POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n${STAMP}\r\n` +
      '3\r\nabc\r\na\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n';
    await c.atServer.untilLength(expected.length);
    expect(c.atServer.text()).toBe(expected);
  });

  it('answers an invalid request with 400 and Connection: close; the provider gets nothing', async () => {
    const c = await connect();
    send(c, 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    await c.atClient.untilEnd();
    expect(c.atClient.text()).toBe(reject('content-length-with-transfer-encoding'));
    expect(c.atClient.text()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n(.*\r\n)*Connection: close\r\n/);
    await c.atServer.untilEnd();
    expect(c.atServer.length).toBe(0);
    expect(c.log.some((line) => line.level === 'warn' && line.event === 'connection rejected')).toBe(true);
  });

  it('refuses a whole read when any request in it is invalid', async () => {
    const c = await connect();
    send(c, 'GET /fine HTTP/1.1\r\nHost: a\r\n\r\nGET /bad HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n');
    await c.atClient.untilEnd();
    expect(c.atClient.text()).toBe(reject('invalid-header-name'));
    await c.atServer.untilEnd();
    expect(c.atServer.length).toBe(0);
  });

  it('sends the 400 after the answers to the requests forwarded before it', async () => {
    const c = await connect();
    send(c, 'GET /1 HTTP/1.1\r\nHost: a\r\n\r\n');
    await c.atServer.untilText('\r\n\r\n');
    send(c, 'GET /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx');
    // The answer to /1 comes later and in two parts: the 400 must not cut into it. The mediator runs in this
    // process: a few loop turns and it has read (and refused) /2 before the answer starts.
    await loopTurns(5);
    c.server.write(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab'));
    await c.atClient.untilText('ab');
    expect(c.atClient.ended).toBe(false);
    c.server.write(Buffer.from('cd'));
    await c.atClient.untilEnd();
    expect(c.atClient.text()).toBe(
      `HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd${reject('duplicate-content-length')}`,
    );
    await c.atServer.untilEnd();
    expect(c.atServer.text()).toBe(`GET /1 HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`);
  });

  it('cuts a streamed body whose framing turns invalid, and answers 400', async () => {
    const c = await connect();
    send(c, 'POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n');
    const forwarded = `POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n${STAMP}\r\n3\r\nabc\r\n`;
    await c.atServer.untilLength(forwarded.length);
    send(c, '+5\r\nhello\r\n0\r\n\r\n');
    await c.atClient.untilEnd();
    expect(c.atClient.text()).toBe(reject('invalid-chunk-size'));
    await c.atServer.untilEnd();
    expect(c.atServer.text()).toBe(forwarded);
  });

  it('turns an upgrade answered with 101 into an opaque tunnel, holding early bytes until then', async () => {
    const c = await connect();
    const upgrade = 'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
    const early = 'GET /not-http HTTP/1.1\r\nX-PV-Client: tunnelled\r\n\r\n';
    send(c, upgrade + early);
    const head = `GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(head.length);
    const switched = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
    c.server.write(Buffer.from(`${switched}\x81\x02hi`, 'latin1'));
    // Held bytes follow the switch unchanged; later bytes both ways are not HTTP any more.
    await c.atServer.untilLength(head.length + early.length);
    expect(c.atServer.text()).toBe(head + early);
    await c.atClient.untilText('hi');
    expect(c.atClient.text()).toBe(`${switched}\x81\x02hi`);
    send(c, 'X-PV-Role: still opaque\r\n\r\n');
    await c.atServer.untilText('opaque\r\n\r\n');
    expect(c.atServer.text()).toBe(`${head + early}X-PV-Role: still opaque\r\n\r\n`);
    c.server.write(Buffer.from('HTTP/1.1 garbage\n'));
    await c.atClient.untilText('garbage\n');
  });

  it('keeps HTTP after an upgrade answered 426: the held request is stamped', async () => {
    const c = await connect();
    send(
      c,
      'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n' +
        'GET /next HTTP/1.1\r\nHost: a\r\nX-PV-Client: forged\r\n\r\n',
    );
    const head = `GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(head.length);
    const refused = 'HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\n\r\nnope';
    c.server.write(Buffer.from(refused));
    const next = `GET /next HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(head.length + next.length);
    expect(c.atServer.text()).toBe(head + next);
    c.server.write(Buffer.from(OK));
    await c.atClient.untilLength(refused.length + OK.length);
    expect(c.atClient.text()).toBe(refused + OK);
    // Still HTTP: a later request is parsed and stamped.
    send(c, 'GET /last HTTP/1.1\r\nHost: a\r\nx-pv-role: admin\r\n\r\n');
    await c.atServer.untilText('/last');
    await c.atServer.untilText(`${STAMP}\r\n`.repeat(1));
    expect(c.atServer.text().endsWith(`GET /last HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`)).toBe(true);
  });

  it('tunnels after a 2xx to CONNECT and stays HTTP after a refused CONNECT', async () => {
    const c = await connect();
    send(c, 'CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n');
    const connect1 = `CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(connect1.length);
    c.server.write(Buffer.from('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'));
    const next = `GET /x HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(connect1.length + next.length);
    expect(c.atServer.text()).toBe(connect1 + next);

    const t = await connect();
    send(t, 'CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\nraw bytes');
    await t.atServer.untilLength(connect1.length);
    t.server.write(Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n'));
    await t.atServer.untilLength(connect1.length + 'raw bytes'.length);
    expect(t.atServer.text()).toBe(`${connect1}raw bytes`);
  });

  it('pairs responses with requests: a HEAD answer has no body, 1xx are interim', async () => {
    const c = await connect();
    send(
      c,
      'HEAD / HTTP/1.1\r\nHost: a\r\n\r\n' +
        'POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n' +
        'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nafter',
    );
    await c.atServer.untilText('Upgrade: x\r\n');
    c.server.write(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n'));
    c.server.write(Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n'));
    c.server.write(
      Buffer.from('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n'),
    );
    // Only a 101 recognized as the answer to the upgrade releases the held bytes.
    await c.atServer.untilText('after');
    expect(c.atServer.text().endsWith(`Upgrade: x\r\n${STAMP}\r\nafter`)).toBe(true);
  });

  it('applies an answer that comes before the upgrade request has ended', async () => {
    const c = await connect();
    send(
      c,
      'POST /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\nContent-Length: 4\r\n\r\nab',
    );
    await c.atServer.untilText('ab');
    c.server.write(Buffer.from('HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n'));
    await c.atClient.untilText('426');
    send(c, 'cdGET /n HTTP/1.1\r\nHost: a\r\nX-PV-Role: forged\r\n\r\n');
    await c.atServer.untilText('GET /n');
    await c.atServer.untilText(`GET /n HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`);
  });

  it('stops reading the consumer while an upgrade waits for its answer', async () => {
    const c = await connect();
    const upgrade = 'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n';
    const size = 8 * 1024 * 1024;
    const body = Buffer.alloc(size, 0x61);
    send(c, `${upgrade}POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: ${size}\r\n\r\n`);
    c.client.write(body);
    await c.atServer.untilText('Upgrade: x\r\n');
    // Nothing in the mediator drains the client while it waits: once the socket buffers are full the client's
    // queue stops shrinking, with most of the body still in it (a mediator that kept reading would empty it).
    const queued = await settled(() => c.client.writableLength, "the client's queue");
    expect(queued).toBeGreaterThan(size - 2 * 1024 * 1024);
    expect(c.atServer.length).toBeLessThan(1024);
    c.server.write(Buffer.from('HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n'));
    await c.atServer.untilLength(c.atServer.length + size);
    expect(c.atServer.text()).toContain(
      `POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: ${size}\r\n${STAMP}\r\n`,
    );
  });

  it('closes fds that arrive on a REST link and relays the bytes they came with', async () => {
    const c = await connect();
    const before = openFdCount();
    const file = fileWithContent('secret');
    c.client.write(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), [file]);
    await c.atServer.untilText('\r\n\r\n');
    c.server.write(Buffer.from(OK), [fileWithContent('other')]);
    await c.atClient.untilLength(OK.length);
    expect(c.atServer.fds).toBe(0);
    expect(c.atClient.fds).toBe(0);
    expect(openFdCount()).toBe(before);
  });

  it('propagates half-close both ways', async () => {
    const c = await connect();
    send(c, 'GET / HTTP/1.0\r\n\r\n');
    c.client.end();
    await c.atServer.untilEnd();
    expect(c.atServer.text()).toBe(`GET / HTTP/1.0\r\n${STAMP}\r\n`);
    c.server.write(Buffer.from('HTTP/1.0 200 OK\r\n\r\nclose-delimited body'));
    c.server.end();
    await c.atClient.untilEnd();
    expect(c.atClient.text()).toBe('HTTP/1.0 200 OK\r\n\r\nclose-delimited body');
  });

  it('ends the connection on a response it cannot pair with a request', async () => {
    const c = await connect();
    c.server.write(Buffer.from(OK));
    await c.atClient.untilEnd();
    expect(c.atClient.length).toBe(0);
    expect(c.log.some((line) => String(line.fields?.reason).includes('unexpected-response'))).toBe(true);
  });

  it('fails a link whose identity cannot be a field value', async () => {
    expect(identityOf({ spec: TEST_SPEC })).toEqual([
      { name: 'X-PV-Client', value: 'app' },
      { name: 'X-PV-Role', value: 'reader' },
    ]);
    const link = { spec: { ...TEST_SPEC, role: 'admin\r\nX-Evil: 1' } } as Parameters<
      typeof restMediator.add
    >[0];
    await expect(restMediator.add(link)).rejects.toThrow(/identity cannot be sent/);
  });
});

describe('the rest mediator under load', () => {
  it('stops reading the consumer while too many requests wait for answers', async () => {
    const c = await connect();
    const request = (n: number) => `GET /${n} HTTP/1.1\r\nHost: a\r\n\r\n`;
    const stamped = (n: number) => `GET /${n} HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`;
    const first = Array.from({ length: 100 }, (_, n) => request(n)).join('');
    send(c, first);
    const forwarded = Array.from({ length: 100 }, (_, n) => stamped(n)).join('');
    await c.atServer.untilLength(forwarded.length);
    send(c, request(100));
    // The 101st request is held: what the server received settles without it.
    expect(await settled(() => c.atServer.length, 'what the server received')).toBe(forwarded.length);
    c.server.write(Buffer.from(OK.repeat(100)));
    await c.atServer.untilLength(forwarded.length + stamped(100).length);
    expect(c.atServer.text()).toBe(forwarded + stamped(100));
  });
});
