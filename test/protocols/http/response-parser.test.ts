import { describe, expect, it } from 'vitest';
import { type AnsweredRequest, ResponseParser } from '../../../protocols/http/index.js';
import { parseEveryWay } from './helpers.js';

const request = (method: string, upgrade: string | null = null): AnsweredRequest => ({ method, upgrade });

/** Parses responses to the given requests in every chunking; `finish` ends the stream afterwards. */
function parse(text: string, requests: AnsweredRequest[], finish = false) {
  return parseEveryWay(
    () => {
      const parser = new ResponseParser();
      for (const answered of requests) parser.expect(answered);
      return parser;
    },
    text,
    finish,
  );
}

const summary = (outcome: ReturnType<typeof parse>) =>
  outcome.messages.map(({ head, body, complete }) => [head.status, head.framing.kind, body, complete]);

describe('response framing', () => {
  it('parses the status line, fields and a Content-Length body', () => {
    const outcome = parse('HTTP/1.1 200 OK fine\r\nContent-Length: 2\r\nX: y\r\n\r\nhi', [request('GET')]);
    expect(outcome.error).toBeNull();
    expect(outcome.messages[0]).toMatchObject({
      head: {
        version: '1.1',
        status: 200,
        reason: 'OK fine',
        keepAlive: true,
        interim: false,
        request: { method: 'GET' },
      },
      body: 'hi',
      complete: true,
    });
  });

  it('reads no body after HEAD, 204 and 304, whatever Content-Length says', () => {
    const outcome = parse(
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx',
      [request('HEAD'), request('DELETE'), request('GET'), request('GET')],
    );
    expect(outcome.error).toBeNull();
    expect(summary(outcome)).toEqual([
      [200, 'none', '', true],
      [204, 'none', '', true],
      [304, 'none', '', true],
      [200, 'length', 'x', true],
    ]);
  });

  it('passes interim 1xx responses before the final one of the same request', () => {
    const outcome = parse(
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
      [request('PUT'), request('GET')],
    );
    expect(outcome.error).toBeNull();
    expect(outcome.messages.map(({ head }) => [head.status, head.interim, head.request.method])).toEqual([
      [100, true, 'PUT'],
      [103, true, 'PUT'],
      [201, false, 'PUT'],
      [200, false, 'GET'],
    ]);
  });

  it('tracks which requests are still unanswered', () => {
    const parser = new ResponseParser();
    parser.expect(request('PUT'));
    parser.expect(request('GET'));
    parser.push(Buffer.from('HTTP/1.1 100 Continue\r\n\r\n'));
    expect(parser.pendingRequests).toBe(2);
    parser.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    expect(parser.pendingRequests).toBe(1);
  });

  it('decodes a chunked body with trailers', () => {
    const outcome = parse(
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5;x=1\r\npedia\r\n0\r\nChecksum: abc\r\n\r\n',
      [request('GET')],
    );
    expect(outcome.messages[0]).toMatchObject({
      body: 'wikipedia',
      trailers: [{ name: 'Checksum', value: 'abc' }],
      complete: true,
    });
  });

  it('reads a body without length until the connection closes', () => {
    const outcome = parse(
      'HTTP/1.1 200 OK\r\n\r\nall of this, HTTP/1.1 200 OK\r\n\r\n',
      [request('GET'), request('GET')],
      true,
    );
    expect(outcome.error).toBeNull();
    expect(outcome.messages).toHaveLength(1);
    expect(outcome.messages[0]).toMatchObject({
      head: { framing: { kind: 'close' }, keepAlive: false },
      body: 'all of this, HTTP/1.1 200 OK\r\n\r\n',
      complete: true,
    });
  });

  it('reads a body of a non-chunked transfer coding until the connection closes', () => {
    const outcome = parse(
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b',
      [request('GET')],
      true,
    );
    expect(outcome.messages[0]).toMatchObject({
      head: { framing: { kind: 'close' } },
      body: '\x1f\x8b',
      complete: true,
    });
  });

  it('parses pipelined responses that arrive in one chunk', () => {
    const outcome = parse(
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none' +
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n' +
        'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n' +
        'HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nthree',
      [request('GET'), request('POST'), request('HEAD'), request('GET')],
    );
    expect(outcome.error).toBeNull();
    expect(summary(outcome)).toEqual([
      [200, 'length', 'one', true],
      [200, 'chunked', 'two', true],
      [200, 'none', '', true],
      [404, 'length', 'three', true],
    ]);
  });

  it('tolerates a status line without reason phrase', () => {
    expect(
      parse('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n', [request('GET')]).messages[0]?.head.reason,
    ).toBe('');
    expect(
      parse('HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n', [request('GET')]).messages[0]?.head.reason,
    ).toBe('');
  });

  it('keeps an HTTP/1.0 connection only with keep-alive', () => {
    const [closing, keeping] = ['', 'Connection: keep-alive\r\n'].map(
      (field) =>
        parse(`HTTP/1.0 200 OK\r\n${field}Content-Length: 0\r\n\r\n`, [request('GET')]).messages[0]?.head
          .keepAlive,
    );
    expect([closing, keeping]).toEqual([false, true]);
  });
});

describe('response protocol switches', () => {
  it('turns the stream opaque after 101 to an upgrade request', () => {
    const outcome = parse(
      'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x02hi',
      [request('GET', 'websocket')],
    );
    expect(outcome).toMatchObject({ error: null, opaque: '\x81\x02hi' });
    expect(outcome.messages[0]).toMatchObject({
      head: { status: 101, framing: { kind: 'tunnel' }, interim: false },
      complete: true,
    });
  });

  it('turns the stream opaque after a 2xx to CONNECT', () => {
    const outcome = parse('HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01', [request('CONNECT')]);
    expect(outcome).toMatchObject({ error: null, opaque: '\x16\x03\x01' });
  });

  it('reads a refused CONNECT as an ordinary response', () => {
    const outcome = parse(
      'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\ndenyHTTP/1.1 200 OK\r\n\r\n',
      [request('CONNECT'), request('CONNECT')],
    );
    expect(outcome).toMatchObject({ error: null, opaque: '' });
    expect(summary(outcome)).toEqual([
      [407, 'length', 'deny', true],
      [200, 'tunnel', '', true],
    ]);
  });

  it('refuses a 101 to a request that asked for no upgrade', () => {
    expect(parse('HTTP/1.1 101 Switching Protocols\r\n\r\n', [request('GET')]).error).toBe(
      'unexpected-switch',
    );
  });
});

describe('response refusals', () => {
  const refusals: [string, string, string][] = [
    ['a response nobody asked for', 'HTTP/1.1 200 OK\r\n\r\n', 'unexpected-response'],
    [
      'CL with TE',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n',
      'content-length-with-transfer-encoding',
    ],
    [
      'TE in HTTP/1.0',
      'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
      'transfer-encoding-in-http10',
    ],
    [
      'chunked not last',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
      'invalid-transfer-encoding',
    ],
    [
      'two CLs',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx',
      'duplicate-content-length',
    ],
    ['a status of two digits', 'HTTP/1.1 20 OK\r\n\r\n', 'invalid-status-line'],
    ['a status of four digits', 'HTTP/1.1 2000 OK\r\n\r\n', 'invalid-status-line'],
    ['a status below 100', 'HTTP/1.1 099 Odd\r\n\r\n', 'invalid-status-line'],
    ['a status with letters', 'HTTP/1.1 2x0 OK\r\n\r\n', 'invalid-status-line'],
    ['a NUL in the reason', 'HTTP/1.1 200 O\x00K\r\n\r\n', 'invalid-status-line'],
    ['a bare CR in the reason', 'HTTP/1.1 200 O\rK\r\n\r\n', 'bare-cr'],
    ['HTTP/2', 'HTTP/2.0 200 OK\r\n\r\n', 'unsupported-version'],
    ['garbage', 'SSH-2.0-OpenSSH\r\n\r\n', 'invalid-version'],
    ['an empty status line', '\r\nHTTP/1.1 200 OK\r\n\r\n', 'invalid-status-line'],
    ['a bare LF', 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n', 'bare-lf'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n', 'obs-fold'],
    [
      'a bad chunk size',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nhi\r\n0\r\n\r\n',
      'invalid-chunk-size',
    ],
    [
      'a forbidden trailer',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nSet-Cookie: a=b\r\n\r\n',
      'forbidden-trailer',
    ],
  ];

  it.each(refusals)('refuses %s', (_, text, code) => {
    expect(parse(text, code === 'unexpected-response' ? [] : [request('GET')]).error).toBe(code);
  });

  it('refuses bytes after a response that closes the connection', () => {
    const text = 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n';
    expect(parse(text, [request('GET'), request('GET')]).error).toBe('data-after-close');
  });

  it('reports a response cut short', () => {
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab', [request('GET')], true).error).toBe(
      'incomplete-message',
    );
    expect(parse('HTTP/1.1 200 OK\r\n', [request('GET')], true).error).toBe('incomplete-message');
  });
});

describe('response heads read lazily', () => {
  it('make the reason and fields when read, from a head whose bytes were split and reused', () => {
    const parser = new ResponseParser();
    parser.expect(request('GET'));
    const text = 'HTTP/1.1 200 All OK\r\nServer: x \r\nContent-Length: 0\r\nX-Empty:\r\n\r\n';
    const events = [...text].flatMap((char) => parser.push(Buffer.from(char, 'latin1')));
    const head = events.find((event) => event.kind === 'head')?.head;
    if (head === undefined) throw new Error('no head parsed');
    // The head spanned chunks: its bytes were gathered in a buffer that the next head overwrites.
    parser.expect(request('GET'));
    for (const char of 'HTTP/1.1 404 Gone Away Now\r\nA: b\r\nContent-Length: 0\r\n\r\n')
      parser.push(Buffer.from(char, 'latin1'));
    expect(head.reason).toBe('All OK');
    const headers = [
      { name: 'Server', value: 'x' },
      { name: 'Content-Length', value: '0' },
      { name: 'X-Empty', value: '' },
    ];
    expect(head.headers).toEqual(headers);
    expect(head.headers).toBe(head.headers);
    expect(JSON.parse(JSON.stringify(head))).toMatchObject({ status: 200, reason: 'All OK', headers });
  });

  it('still checks every field line, read or not', () => {
    expect(
      parse('HTTP/1.1 200 OK\r\nServer: a\x01b\r\nContent-Length: 0\r\n\r\n', [request('GET')]).error,
    ).toBe('invalid-header-value');
    expect(parse('HTTP/1.1 200 OK\r\nSer ver: a\r\nContent-Length: 0\r\n\r\n', [request('GET')]).error).toBe(
      'invalid-header-name',
    );
  });
});
