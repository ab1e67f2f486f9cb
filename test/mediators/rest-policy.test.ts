// The access policy of rest links: which requests a narrowed role may send (RestPolicy), and what a connection does
// with a refused one (socket pairs, no namespaces): a 403 in its turn among the answers, nothing at the provider,
// its body dropped, the connection kept, the requests behind it forwarded after it.
import { afterEach, describe, expect, it } from 'vitest';
import { RestPolicy } from '../../mediators/rest-policy.js';
import { TerminalLinkError } from '../../mediators/types.js';
import { type Narrowing, parseAllow } from '../../protocols/graph/allow.js';
import { type RestConnection, restConnection } from '../../testkit/http-link.js';
import { loopTurns } from '../../testkit/mesh.js';

const STAMP = 'X-PV-Client: app\r\nX-PV-Role: reader\r\n';
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

/** The narrowings `allow` grants the role `reader` on a rest link (validated as the daemon does). */
function narrowingsOf(allow: unknown[]): readonly Narrowing[] {
  const grant = parseAllow(allow, 'rest', 'test').grantFor('reader');
  if (grant?.narrowings == null) throw new Error('reader is not narrowed');
  return grant.narrowings;
}

const READER = narrowingsOf([
  { role: 'reader', methods: ['GET', 'HEAD'], paths: ['/api/*', '/status'] },
  { role: 'reader', methods: ['POST'], paths: ['/api/jobs'] },
]);

function forbidden(rule: string, request: string, extra = ''): string {
  const body = `${JSON.stringify({ error: 'forbidden by the access policy', rule, request })}\n`;
  return `HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;
}

describe('RestPolicy', () => {
  const policy = new RestPolicy('reader', READER);

  it.each([
    ['GET', '/api/items?q=1', '/api/items?q=1'],
    ['HEAD', '/status', '/status'],
    ['POST', '/api/jobs', '/api/jobs'],
    // Checked and forwarded normalized.
    ['GET', '/api/./a/../b', '/api/b'],
    ['GET', '/%61pi/%7e', '/api/~'],
    ['GET', 'http://svc/api/x/../y', 'http://svc/api/y'],
  ])('allows %s %s, forwarded as %s', (method, target, forwarded) => {
    expect(policy.check(method, target)).toEqual({ allowed: true, target: forwarded });
  });

  it.each([
    // No entry lists the method.
    ['DELETE', '/api/items', 'reader: methods', 'DELETE /api/items'],
    ['get', '/api/items', 'reader: methods', 'get /api/items'],
    // An entry lists the method, none the path with it.
    ['POST', '/api/items', 'reader: paths', 'POST /api/items'],
    ['GET', '/status/x', 'reader: paths', 'GET /status/x'],
    ['GET', '/api', 'reader: paths', 'GET /api'],
    ['GET', '/api/%2e%2e/admin?x', 'reader: paths', 'GET /admin'],
    ['GET', '/API/x', 'reader: paths', 'GET /API/x'],
    // No path to match: the asterisk-form and the authority-form match no path pattern.
    ['GET', '*', 'reader: paths', 'GET *'],
  ])('refuses %s %s by %s', (method, target, rule, request) => {
    expect(policy.check(method, target)).toEqual({
      allowed: false,
      status: 403,
      rule,
      request,
      reason: null,
    });
  });

  it('answers 400 for a path it cannot check soundly', () => {
    expect(policy.check('GET', '/api/../../etc/passwd')).toEqual({
      allowed: false,
      status: 400,
      rule: 'reader: paths',
      request: 'GET /api/../../etc/passwd',
      reason: 'its dot segments climb above /',
    });
    expect(policy.check('GET', '/api/..%2f..%2fx?y')).toMatchObject({
      status: 400,
      request: 'GET /api/..%2f..%2fx',
      reason: "an encoded '/' in the path",
    });
  });

  it('leaves targets alone when no entry narrows paths, and lets OPTIONS * through when its method is listed', () => {
    const methodsOnly = new RestPolicy(
      'reader',
      narrowingsOf([{ role: 'reader', methods: ['GET', 'OPTIONS'] }]),
    );
    expect(methodsOnly.check('GET', '/a/../../b')).toEqual({ allowed: true, target: '/a/../../b' });
    expect(methodsOnly.check('OPTIONS', '*')).toEqual({ allowed: true, target: '*' });
    expect(methodsOnly.check('PUT', '/a')).toMatchObject({ status: 403, rule: 'reader: methods' });
    // An object entry without fields allows everything.
    expect(new RestPolicy('reader', narrowingsOf([{ role: 'reader' }])).check('CONNECT', 'db:1')).toEqual({
      allowed: true,
      target: 'db:1',
    });
  });

  it('normalizes the patterns as it normalizes paths, and fails a link whose pattern can never match', () => {
    const encoded = new RestPolicy('reader', narrowingsOf([{ role: 'reader', paths: ['/%7euser/*'] }]));
    expect(encoded.check('GET', '/~user/x')).toEqual({ allowed: true, target: '/~user/x' });
    expect(() => new RestPolicy('reader', narrowingsOf([{ role: 'reader', paths: ['/a%2Fb'] }]))).toThrow(
      new TerminalLinkError(
        "policy error: the path pattern '/a%2Fb' of role 'reader' can never match a request (an encoded '/' in the path)",
      ),
    );
  });
});

let connections: RestConnection[] = [];

async function connect(narrowings: readonly Narrowing[] = READER): Promise<RestConnection> {
  const connection = await restConnection({}, narrowings);
  connections.push(connection);
  return connection;
}

afterEach(async () => {
  await Promise.all(connections.map((connection) => connection.close()));
  connections = [];
});

function send(connection: RestConnection, text: string | Buffer): void {
  connection.client.write(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
}

describe('a rest connection with a narrowed role', () => {
  it('answers a refused request with 403 naming the rule, reports it, and keeps the connection', async () => {
    const c = await connect();
    send(c, 'DELETE /api/items/1 HTTP/1.1\r\nHost: a\r\n\r\n');
    const denied = forbidden('reader: methods', 'DELETE /api/items/1');
    await c.atClient.untilLength(denied.length);
    expect(c.atClient.text()).toBe(denied);
    expect(c.refusals).toEqual([{ rule: 'reader: methods', what: 'DELETE /api/items/1' }]);
    expect(c.counters.denied).toBe(1);
    // The same connection goes on.
    send(c, 'GET /api/items/1 HTTP/1.1\r\nHost: a\r\n\r\n');
    const allowed = `GET /api/items/1 HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(allowed.length);
    expect(c.atServer.text()).toBe(allowed);
    c.server.write(Buffer.from(OK));
    await c.atClient.untilLength(denied.length + OK.length);
    expect(c.atClient.text()).toBe(denied + OK);
  });

  it('drops the body of a refused POST, Content-Length or chunked, large or small', async () => {
    const c = await connect();
    const big = Buffer.alloc(1024 * 1024, 0x61);
    send(c, `POST /api/items HTTP/1.1\r\nHost: a\r\nContent-Length: ${big.length}\r\n\r\n`);
    send(c, big);
    send(c, 'POST /admin HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    send(c, 'GET /status HTTP/1.1\r\nHost: a\r\n\r\n');
    const status = `GET /status HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(status.length);
    c.server.write(Buffer.from(OK));
    const answers =
      forbidden('reader: paths', 'POST /api/items') + forbidden('reader: paths', 'POST /admin') + OK;
    await c.atClient.untilLength(answers.length);
    expect(c.atClient.text()).toBe(answers);
    // Not a byte of the refused requests reached the provider.
    expect(c.atServer.text()).toBe(status);
  });

  it('answers a pipelined mix of allowed and refused requests in order', async () => {
    const c = await connect();
    send(
      c,
      'GET /api/1 HTTP/1.1\r\nHost: a\r\n\r\n' +
        'POST /api/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc' +
        'GET /api/2 HTTP/1.1\r\nHost: a\r\n\r\n' +
        'GET /secret HTTP/1.1\r\nHost: a\r\n\r\n' +
        'HEAD /status HTTP/1.1\r\nHost: a\r\n\r\n',
    );
    const first = `GET /api/1 HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(first.length);
    // The requests behind the refused one wait until its 403 has been sent, after the answer to /api/1.
    await loopTurns(10);
    expect(c.atServer.text()).toBe(first);
    c.server.write(Buffer.from(OK));
    const second = `GET /api/2 HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(first.length + second.length);
    await loopTurns(10);
    expect(c.atServer.text()).toBe(first + second);
    const one = 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none';
    c.server.write(Buffer.from(one));
    const head = `HEAD /status HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(first.length + second.length + head.length);
    const headAnswer = 'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n';
    c.server.write(Buffer.from(headAnswer));
    const answers =
      OK +
      forbidden('reader: paths', 'POST /api/1') +
      one +
      forbidden('reader: paths', 'GET /secret') +
      headAnswer;
    await c.atClient.untilLength(answers.length);
    expect(c.atClient.text()).toBe(answers);
    expect(c.atServer.text()).toBe(first + second + head);
    expect(c.refusals.map((refusal) => refusal.what)).toEqual(['POST /api/1', 'GET /secret']);
  });

  it('ends the provider side after the requests that waited, when the consumer half-closes', async () => {
    const c = await connect();
    send(
      c,
      'GET /api/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\n\r\nGET /api/2 HTTP/1.1\r\nHost: a\r\n\r\n',
    );
    c.client.end();
    const first = `GET /api/1 HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(first.length);
    await loopTurns(10);
    expect(c.atServer.ended).toBe(false);
    c.server.write(Buffer.from(OK));
    await c.atServer.untilEnd();
    expect(c.atServer.text()).toBe(`${first}GET /api/2 HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`);
    c.server.write(Buffer.from(OK));
    c.server.end();
    await c.atClient.untilEnd();
    expect(c.atClient.text()).toBe(OK + forbidden('reader: paths', 'GET /nope') + OK);
  });

  it('closes after a refused request that asked to close, or that expects 100-continue with a body', async () => {
    for (const [request, what] of [
      ['GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 'GET /x'],
      ['GET /x HTTP/1.0\r\n\r\n', 'GET /x'],
      ['PUT /api/a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n', 'PUT /api/a'],
    ] as const) {
      const c = await connect();
      send(c, request);
      await c.atClient.untilEnd();
      const rule = what.startsWith('PUT') ? 'reader: methods' : 'reader: paths';
      expect(c.atClient.text()).toBe(forbidden(rule, what, 'Connection: close\r\n'));
      await c.atServer.untilEnd();
      expect(c.atServer.length).toBe(0);
      expect(c.log.some((line) => line.event === 'connection rejected')).toBe(false);
    }
  });

  it('keeps an HTTP/1.0 keep-alive connection, answers HEAD without a body, and 400 for a climbing path', async () => {
    const c = await connect();
    send(c, 'GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const kept = forbidden('reader: paths', 'GET /x', 'Connection: keep-alive\r\n');
    await c.atClient.untilLength(kept.length);
    send(c, 'HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n');
    const head = forbidden('reader: paths', 'HEAD /x').replace(/\{.*\}\n$/, '');
    await c.atClient.untilLength(kept.length + head.length);
    send(c, 'GET /api/../../x HTTP/1.1\r\nHost: a\r\n\r\n');
    const body = `${JSON.stringify({
      error: 'the request path cannot be checked: its dot segments climb above /',
      rule: 'reader: paths',
      request: 'GET /api/../../x',
    })}\n`;
    const bad = `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    await c.atClient.untilLength(kept.length + head.length + bad.length);
    expect(c.atClient.text()).toBe(kept + head + bad);
    expect(c.refusals.at(-1)).toEqual({
      rule: 'reader: paths',
      what: 'GET /api/../../x (its dot segments climb above /)',
    });
    expect(c.atServer.length).toBe(0);
    expect(c.atClient.ended).toBe(false);
  });

  it('forwards the normalized target it checked', async () => {
    const c = await connect();
    send(c, 'GET /api/%7euser/./x/../y?z=%2e%2e HTTP/1.1\r\nHost: a\r\n\r\n');
    const forwarded = `GET /api/~user/y?z=%2e%2e HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(forwarded.length);
    expect(c.atServer.text()).toBe(forwarded);
  });

  it('does not switch for a refused upgrade or CONNECT: what follows is parsed as requests', async () => {
    const c = await connect(narrowingsOf([{ role: 'reader', methods: ['GET'], paths: ['/api/*'] }]));
    send(
      c,
      'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n' +
        'CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n' +
        'GET /api/next HTTP/1.1\r\nHost: a\r\nX-PV-Role: forged\r\n\r\n',
    );
    const next = `GET /api/next HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(next.length);
    expect(c.atServer.text()).toBe(next);
    c.server.write(Buffer.from(OK));
    const answers =
      forbidden('reader: paths', 'GET /ws') + forbidden('reader: methods', 'CONNECT db:5432') + OK;
    await c.atClient.untilLength(answers.length);
    expect(c.atClient.text()).toBe(answers);
  });

  it('answers a 400 for an invalid request after a waiting 403', async () => {
    const c = await connect();
    send(c, 'GET /api/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /no HTTP/1.1\r\nHost: a\r\n\r\n');
    const first = `GET /api/1 HTTP/1.1\r\nHost: a\r\n${STAMP}\r\n`;
    await c.atServer.untilLength(first.length);
    await loopTurns(5);
    send(c, 'GET /api/2 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
    await loopTurns(5);
    c.server.write(Buffer.from(OK));
    await c.atClient.untilEnd();
    const before = OK + forbidden('reader: paths', 'GET /no');
    expect(c.atClient.text().slice(0, before.length)).toBe(before);
    expect(c.atClient.text().slice(before.length)).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(c.atServer.text()).toBe(first);
  });
});
