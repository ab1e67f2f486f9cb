import { describe, expect, it } from 'vitest';
import {
  type HttpLimits,
  type RequestEvent,
  type RequestHead,
  RequestParser,
} from '../../../protocols/http/index.js';
import { parseEveryWay } from './helpers.js';
import type { Feeder } from './streams.js';

const parse = (text: string, limits: Partial<HttpLimits> = {}) =>
  parseEveryWay(() => new RequestParser(limits), text);
const parseToEnd = (text: string) => parseEveryWay(() => new RequestParser(), text, true);
const head = (text: string) => {
  const outcome = parse(text);
  expect(outcome.error).toBeNull();
  const first = outcome.messages[0];
  if (first === undefined) throw new Error('no message');
  return first.head;
};

/** A parser that answers every pending switch the same way, as a mediator would once the response came. */
function switching(answer: 'tunnel' | 'http'): Feeder<RequestHead> {
  const parser = new RequestParser();
  const settle = (events: RequestEvent[]): RequestEvent[] => {
    while (parser.awaitingSwitch)
      events.push(...(answer === 'tunnel' ? parser.switchToTunnel() : parser.resumeHttp()));
    return events;
  };
  return { push: (chunk) => settle(parser.push(chunk)), finish: () => settle(parser.finish()) };
}

const GET = 'GET / HTTP/1.1\r\nHost: a\r\n\r\n';

describe('request heads', () => {
  it('parses method, target, version and fields in order with their case, trimming OWS', () => {
    const parsed = head(
      'PATCH /p?q=1 HTTP/1.1\r\nHost: example:80\r\nX-Mixed-Case:  v a l \t\r\nEmpty:\r\n\r\n',
    );
    expect(parsed).toMatchObject({
      method: 'PATCH',
      target: '/p?q=1',
      version: '1.1',
      keepAlive: true,
      upgrade: null,
    });
    expect(parsed.headers).toEqual([
      { name: 'Host', value: 'example:80' },
      { name: 'X-Mixed-Case', value: 'v a l' },
      { name: 'Empty', value: '' },
    ]);
    expect(parsed.framing).toEqual({ kind: 'none' });
  });

  it('keeps obs-text bytes of a value as latin1', () => {
    expect(head('GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9\x80\xff\r\n\r\n').headers[1]).toEqual({
      name: 'X',
      value: 'caf\xe9\x80\xff',
    });
  });

  it('skips empty lines before a request line', () => {
    const outcome = parse(`\r\n\r\n${GET}\r\n${GET}`);
    expect(outcome.error).toBeNull();
    expect(outcome.messages).toHaveLength(2);
  });

  it('accepts the origin, absolute, authority (CONNECT) and asterisk (OPTIONS) forms', () => {
    expect(head('GET http://h:8/x?y HTTP/1.1\r\nHost: h:8\r\n\r\n').target).toBe('http://h:8/x?y');
    expect(head('GET HTTPS://[::1]:8 HTTP/1.1\r\nHost: h:8\r\n\r\n').target).toBe('HTTPS://[::1]:8');
    expect(head('OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n').target).toBe('*');
    expect(head('CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n').target).toBe('h:443');
    expect(head('CONNECT [::1]:443 HTTP/1.1\r\nHost: h\r\n\r\n').target).toBe('[::1]:443');
  });

  it('accepts any token as a method', () => {
    expect(head("X-CUSTOM!#$%&'*+.^_`|~ / HTTP/1.1\r\nHost: a\r\n\r\n").method).toBe(
      "X-CUSTOM!#$%&'*+.^_`|~",
    );
  });

  it('parses HTTP/1.0 without Host, closing by default unless keep-alive is asked', () => {
    expect(head('GET / HTTP/1.0\r\n\r\n')).toMatchObject({ version: '1.0', keepAlive: false });
    expect(head('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n').keepAlive).toBe(true);
    expect(head('GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n').keepAlive).toBe(false);
  });

  it('flags Expect: 100-continue on HTTP/1.1 only', () => {
    expect(
      head('PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 0\r\n\r\n').expectContinue,
    ).toBe(true);
    expect(head('PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n').expectContinue).toBe(false);
  });

  it('parses pipelined requests in one chunk', () => {
    const outcome = parse(`${GET}POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc${GET}`);
    expect(outcome.error).toBeNull();
    expect(outcome.messages.map((message) => [message.head.method, message.body, message.complete])).toEqual([
      ['GET', '', true],
      ['POST', 'abc', true],
      ['GET', '', true],
    ]);
  });
});

describe('request bodies', () => {
  it('delimits a Content-Length body', () => {
    const outcome = parse('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello');
    expect(outcome.messages[0]).toMatchObject({
      body: 'hello',
      complete: true,
      head: { framing: { kind: 'length', length: 5 } },
    });
  });

  it('ends a Content-Length: 0 message at once', () => {
    const outcome = parse(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 000\r\n\r\n${GET}`);
    expect(outcome.messages.map((message) => message.complete)).toEqual([true, true]);
  });

  it('decodes chunked framing with extensions and trailers', () => {
    const outcome = parse(
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n' +
        '5;name=token;q="quoted \\" \\\\ ;"\r\nhello\r\nA\r\n0123456789\r\n000;last\r\nX-Sum: 1\r\nX-Other: two\r\n\r\n' +
        GET,
    );
    expect(outcome.error).toBeNull();
    expect(outcome.messages[0]).toMatchObject({
      body: 'hello0123456789',
      complete: true,
      trailers: [
        { name: 'X-Sum', value: '1' },
        { name: 'X-Other', value: 'two' },
      ],
      head: { framing: { kind: 'chunked' } },
    });
    expect(outcome.messages[1]?.complete).toBe(true);
  });

  it('emits body data as slices of the pushed chunk, not copies', () => {
    const chunk = Buffer.from('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody');
    const body = new RequestParser().push(chunk).find((event) => event.kind === 'body');
    if (body?.kind !== 'body') throw new Error('no body event');
    // Small buffers share Node's pool, so the same ArrayBuffer alone would not tell a copy apart.
    expect(body.data.buffer).toBe(chunk.buffer);
    expect(body.data.byteOffset).toBe(chunk.byteOffset + chunk.length - 4);
    chunk.write('BODY', chunk.length - 4);
    expect(body.data.toString()).toBe('BODY');
  });

  it('streams a large body without waiting for all of it', () => {
    const parser = new RequestParser();
    const first = parser.push(Buffer.from('PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nabc'));
    expect(first.map((event) => event.kind)).toEqual(['head', 'body']);
    const second = parser.push(Buffer.alloc(999997, 0x78));
    expect(second.map((event) => event.kind)).toEqual(['body', 'end']);
  });
});

describe('request refusals', () => {
  const refusals: [string, string, string][] = [
    [
      'CL with TE',
      'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n',
      'content-length-with-transfer-encoding',
    ],
    [
      'TE with CL',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n',
      'content-length-with-transfer-encoding',
    ],
    [
      'two equal CLs',
      'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx',
      'duplicate-content-length',
    ],
    [
      'two different CLs',
      'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx',
      'duplicate-content-length',
    ],
    ['a CL list', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx', 'invalid-content-length'],
    ['a signed CL', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx', 'invalid-content-length'],
    ['a negative CL', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n', 'invalid-content-length'],
    ['a hex CL', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\nx', 'invalid-content-length'],
    ['an empty CL', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n', 'invalid-content-length'],
    [
      'an overflowing CL',
      'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n',
      'invalid-content-length',
    ],
    [
      'a CL past 2^53',
      'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9007199254740993\r\n\r\n',
      'invalid-content-length',
    ],
    [
      'chunked then identity',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n',
      'invalid-transfer-encoding',
    ],
    [
      'chunked not final',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
      'invalid-transfer-encoding',
    ],
    [
      'gzip only',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n',
      'invalid-transfer-encoding',
    ],
    [
      'chunked twice',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n',
      'invalid-transfer-encoding',
    ],
    [
      'two TE fields',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n',
      'invalid-transfer-encoding',
    ],
    [
      'an unknown coding',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n',
      'invalid-transfer-encoding',
    ],
    [
      'an empty coding',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n',
      'invalid-transfer-encoding',
    ],
    [
      'chunked with a parameter',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n',
      'invalid-transfer-encoding',
    ],
    [
      'chunked followed by NBSP',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\xa0\r\n\r\n',
      'invalid-transfer-encoding',
    ],
    [
      'TE in HTTP/1.0',
      'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'transfer-encoding-in-http10',
    ],
    [
      'chunk size +1',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n+1\r\nx\r\n0\r\n\r\n',
      'invalid-chunk-size',
    ],
    [
      'chunk size -1',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n',
      'invalid-chunk-size',
    ],
    [
      'chunk size 0x1',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\nx\r\n0\r\n\r\n',
      'invalid-chunk-size',
    ],
    [
      'chunk size with a leading space',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 1\r\nx\r\n0\r\n\r\n',
      'invalid-chunk-size',
    ],
    [
      'chunk size with a trailing space',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n',
      'invalid-chunk-size',
    ],
    [
      'chunk size with a tab before ;',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\t;a\r\nx\r\n0\r\n\r\n',
      'invalid-chunk-size',
    ],
    [
      'an empty chunk size',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nx\r\n0\r\n\r\n',
      'invalid-chunk-size',
    ],
    [
      'an overflowing chunk size',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\nx\r\n',
      'invalid-chunk-size',
    ],
    [
      'a chunk size past 2^53',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFF\r\nx\r\n',
      'invalid-chunk-size',
    ],
    [
      '17 digits of leading zeros',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000001\r\nx\r\n0\r\n\r\n',
      'invalid-chunk-size',
    ],
    [
      'a chunk-ext name with "',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a"b\r\nx\r\n0\r\n\r\n',
      'invalid-chunk-extension',
    ],
    [
      'an empty chunk-ext',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;\r\nx\r\n0\r\n\r\n',
      'invalid-chunk-extension',
    ],
    [
      'a chunk-ext with spaces',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a = b\r\nx\r\n0\r\n\r\n',
      'invalid-chunk-extension',
    ],
    [
      'a chunk-ext with NUL',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\x00\r\nx\r\n0\r\n\r\n',
      'invalid-chunk-extension',
    ],
    [
      'an unterminated quoted chunk-ext',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a="b\r\nx\r\n0\r\n\r\n',
      'invalid-chunk-extension',
    ],
    [
      'a chunk-ext with a bare CR',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b\rc\r\nx\r\n0\r\n\r\n',
      'bare-cr',
    ],
    [
      'no CRLF after chunk data',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxx\r\n0\r\n\r\n',
      'invalid-chunk-terminator',
    ],
    [
      'LF only after chunk data',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\n0\r\n\r\n',
      'invalid-chunk-terminator',
    ],
    [
      'a bare LF after a chunk size',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n',
      'bare-lf',
    ],
    [
      'a forbidden trailer',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n',
      'forbidden-trailer',
    ],
    [
      'a Host trailer',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nhost: b\r\n\r\n',
      'forbidden-trailer',
    ],
    [
      'an obs-folded trailer',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n',
      'obs-fold',
    ],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n', 'obs-fold'],
    ['obs-fold with a tab', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n', 'obs-fold'],
    ['whitespace before the first field', 'GET / HTTP/1.1\r\n Host: a\r\n\r\n', 'obs-fold'],
    ['a bare LF ending the request line', 'GET / HTTP/1.1\nHost: a\r\n\r\n', 'bare-lf'],
    ['a bare LF ending a field', 'GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n', 'bare-lf'],
    ['bare LFs ending the head', 'GET / HTTP/1.1\r\nHost: a\r\n\n', 'bare-lf'],
    ['a bare CR in a field value', 'GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n', 'bare-cr'],
    ['a bare CR in the request line', 'GET /\r HTTP/1.1\r\nHost: a\r\n\r\n', 'bare-cr'],
    ['a CR before CRLF', 'GET / HTTP/1.1\r\r\nHost: a\r\n\r\n', 'bare-cr'],
    ['a CR in a field name', 'GET / HTTP/1.1\r\nHo\rst: a\r\n\r\n', 'bare-cr'],
    ['NUL in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n', 'invalid-header-value'],
    ['DEL in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n', 'invalid-header-value'],
    ['VT in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\x0bb\r\n\r\n', 'invalid-header-value'],
    ['ESC in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[0m\r\n\r\n', 'invalid-header-value'],
    ['NUL in a name', 'GET / HTTP/1.1\r\nHost: a\r\nX\x00Y: b\r\n\r\n', 'invalid-header-name'],
    ['@ in a name', 'GET / HTTP/1.1\r\nHost: a\r\nX@Y: b\r\n\r\n', 'invalid-header-name'],
    ['" in a name', 'GET / HTTP/1.1\r\nHost: a\r\n"X": b\r\n\r\n', 'invalid-header-name'],
    ['an empty name', 'GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n', 'invalid-header-name'],
    ['no colon', 'GET / HTTP/1.1\r\nHost: a\r\nX-No-Colon\r\n\r\n', 'invalid-header-name'],
    ['space inside a name', 'GET / HTTP/1.1\r\nHost: a\r\nX Y: b\r\n\r\n', 'invalid-header-name'],
    [
      'space before the colon',
      'GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n',
      'space-before-colon',
    ],
    ['tab before the colon', 'GET / HTTP/1.1\r\nHost\t: a\r\n\r\n', 'space-before-colon'],
    ['two spaces after the method', 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-request-line'],
    ['a space inside the target', 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-request-line'],
    ['a trailing space', 'GET / HTTP/1.1 \r\nHost: a\r\n\r\n', 'invalid-request-line'],
    ['a tab as separator', 'GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-method'],
    ['an HTTP/0.9 request line', 'GET /\r\n\r\n', 'invalid-request-line'],
    ['an empty method', ' / HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-method'],
    ['a method with @', 'GE@T / HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-method'],
    ['a method with NUL', 'G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-method'],
    ['NUL in the target', 'GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-target'],
    ['DEL in the target', 'GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-target'],
    ['obs-text in the target', 'GET /\xe9 HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-target'],
    ['a quote in the target', 'GET /"x" HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-target'],
    ['a relative target', 'GET a/b HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-target'],
    ['an absolute-form of another scheme', 'GET ftp://a/b HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-target'],
    ['userinfo in an absolute-form', 'GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-target'],
    [
      'a fragment in an absolute-form authority',
      'GET http://a#b:8/ HTTP/1.1\r\nHost: a\r\n\r\n',
      'invalid-target',
    ],
    ['a fragment in the target', 'GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-target'],
    ['* for GET', 'GET * HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-target'],
    ['an origin-form CONNECT', 'CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-target'],
    ['a CONNECT without port', 'CONNECT host HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-target'],
    ['authority-form for GET', 'GET host:80 HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid-target'],
    [
      'a CONNECT with a body',
      'CONNECT h:1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi',
      'invalid-connect',
    ],
    ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', 'unsupported-version'],
    ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: a\r\n\r\n', 'unsupported-version'],
    ['HTTP/0.9', 'GET / HTTP/0.9\r\n\r\n', 'unsupported-version'],
    ['a lowercase version', 'GET / http/1.1\r\nHost: a\r\n\r\n', 'invalid-version'],
    ['a two-digit version', 'GET / HTTP/1.10\r\nHost: a\r\n\r\n', 'invalid-version'],
    ['a version without minor', 'GET / HTTP/1\r\nHost: a\r\n\r\n', 'invalid-version'],
    ['no Host in HTTP/1.1', 'GET / HTTP/1.1\r\n\r\n', 'missing-host'],
    ['two Host fields', 'GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n', 'duplicate-host'],
    ['two Host fields in HTTP/1.0', 'GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n', 'duplicate-host'],
    ['a Host with a space', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', 'invalid-host'],
    ['a Host with a path', 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', 'invalid-host'],
    ['a Host with userinfo', 'GET / HTTP/1.1\r\nHost: u@a\r\n\r\n', 'invalid-host'],
    [
      'a Connection option that is not a token',
      'GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n',
      'invalid-connection',
    ],
  ];

  it.each(refusals)('refuses %s', (_, text, code) => {
    expect(parse(text).error).toBe(code);
  });

  it('refuses bytes after a message that closes the connection', () => {
    expect(parse(`GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n${GET}`).error).toBe(
      'data-after-close',
    );
    expect(parse(`GET / HTTP/1.0\r\n\r\n${GET}`).error).toBe('data-after-close');
  });

  it('keeps the events before an error and stays failed afterwards', () => {
    const parser = new RequestParser();
    const events = parser.push(Buffer.from(`${GET}GET / HTTP/1.1\r\nHost: a\r\nX\x00: b\r\n\r\n`));
    expect(events.map((event) => event.kind)).toEqual(['head', 'end', 'error']);
    const error = events.at(-1);
    expect(error?.kind === 'error' && error.error.message).toMatch(/field name/);
    expect(parser.push(Buffer.from(GET))).toEqual([]);
    expect(parser.done).toBe(true);
  });
});

describe('request limits', () => {
  const withTarget = (length: number) => `GET /${'a'.repeat(length - 14)} HTTP/1.1\r\nHost: a\r\n\r\n`;
  const withFields = (count: number, valueBytes = 1) =>
    `GET / HTTP/1.1\r\nHost: a\r\n${Array.from({ length: count - 1 }, (_, i) => `X-${i}: ${'v'.repeat(valueBytes)}\r\n`).join('')}\r\n`;

  it('allows a request line of 8 KiB and refuses one byte more', () => {
    expect(withTarget(8192).indexOf('\r')).toBe(8192);
    expect(parse(withTarget(8192)).error).toBeNull();
    expect(parse(withTarget(8193)).error).toBe('line-too-long');
  });

  it('allows 100 fields and refuses 101', () => {
    expect(parse(withFields(100)).error).toBeNull();
    expect(parse(withFields(101)).error).toBe('too-many-headers');
  });

  it('allows 64 KiB of field lines and refuses one byte more', () => {
    // 'Host: a\r\n' is 9 bytes and 'X-0: <value>\r\n' 7 more than its value.
    const largest = withFields(2, 65536 - 9 - 7);
    expect(largest.length - 'GET / HTTP/1.1\r\n'.length - 2).toBe(65536);
    expect(parse(largest).error).toBeNull();
    expect(parse(withFields(2, 65536 - 9 - 6)).error).toBe('headers-too-large');
  });

  it('takes custom limits', () => {
    expect(parse(GET, { maxLineBytes: 13 }).error).toBe('line-too-long');
    expect(parse(GET, { maxLineBytes: 14 }).error).toBeNull();
    expect(parse(GET, { maxHeaders: 0 }).error).toBe('too-many-headers');
    expect(parse(GET, { maxHeaderBytes: 8 }).error).toBe('headers-too-large');
    expect(parse(GET, { maxHeaderBytes: 9 }).error).toBeNull();
    // The largest head these limits allow, after empty lines that must not count against them.
    expect(parse(`\r\n\r\n${GET}`, { maxLineBytes: 14, maxHeaderBytes: 9 }).messages).toHaveLength(1);
  });

  it('refuses an endless line or header section before it ends', () => {
    const parser = new RequestParser();
    const line = parser.push(Buffer.alloc(10_000, 0x61));
    expect(line.map((event) => event.kind === 'error' && event.error.code)).toEqual(['line-too-long']);
    const fields = new RequestParser({ maxHeaderBytes: 1000 });
    expect(fields.push(Buffer.from('GET / HTTP/1.1\r\nX: '))).toEqual([]);
    const refused = fields.push(Buffer.alloc(1000, 0x62));
    expect(refused.map((event) => event.kind === 'error' && event.error.code)).toEqual(['headers-too-large']);
  });

  it('limits chunk-size lines and trailer sections', () => {
    const chunked = 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n';
    expect(parse(`${chunked}1;${'e'.repeat(8190)}\r\nx\r\n0\r\n\r\n`).error).toBeNull();
    expect(parse(`${chunked}1;${'e'.repeat(8191)}\r\nx\r\n0\r\n\r\n`).error).toBe('line-too-long');
    expect(parse(`${chunked}0\r\n${'X: y\r\n'.repeat(100)}\r\n`).error).toBeNull();
    expect(parse(`${chunked}0\r\n${'X: y\r\n'.repeat(101)}\r\n`).error).toBe('too-many-headers');
  });

  it('finds the lines of a head split after leading empty lines', () => {
    const parser = new RequestParser();
    expect(parser.push(Buffer.from('\r'))).toEqual([]);
    expect(parser.push(Buffer.from('\nGET / HTTP/1.1\r\nHost: a\r\nX-A: '))).toEqual([]);
    const events = parser.push(Buffer.from('b\r\n\r\n'));
    expect(events[0]?.kind === 'head' && events[0].head.headers).toEqual([
      { name: 'Host', value: 'a' },
      { name: 'X-A', value: 'b' },
    ]);
  });

  it('keeps an endless run of empty lines before a request from growing memory', () => {
    const parser = new RequestParser();
    for (let i = 0; i < 20_000; i++) expect(parser.push(Buffer.from(i % 2 === 0 ? '\r' : '\n'))).toEqual([]);
    expect(parser.push(Buffer.from(GET)).map((event) => event.kind)).toEqual(['head', 'end']);
  });
});

describe('protocol switches', () => {
  const upgrade =
    'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n';

  it('reports an upgrade request and holds later bytes until told', () => {
    const parser = new RequestParser();
    const events = parser.push(Buffer.from(`${upgrade}\x81\x05hello`, 'latin1'));
    expect(events.map((event) => event.kind)).toEqual(['head', 'end']);
    expect(events[0]?.kind === 'head' && events[0].head.upgrade).toBe('websocket');
    expect(parser.awaitingSwitch).toBe(true);
    expect(parser.push(Buffer.from('more'))).toEqual([]);
    const released = parser.switchToTunnel();
    expect(released.map((event) => event.kind === 'opaque' && event.data.toString('latin1'))).toEqual([
      '\x81\x05hello',
      'more',
    ]);
    expect(parser.push(Buffer.from('GET / HTTP/1.1\r\n'))).toMatchObject([{ kind: 'opaque' }]);
  });

  it('tunnels after CONNECT in every chunking', () => {
    const outcome = parseEveryWay(
      () => switching('tunnel'),
      'CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n\x16\x03\x01 TLS bytes',
    );
    expect(outcome).toMatchObject({ error: null, opaque: '\x16\x03\x01 TLS bytes' });
    expect(outcome.messages).toHaveLength(1);
  });

  it('parses held bytes as HTTP when the switch is declined', () => {
    const outcome = parseEveryWay(() => switching('http'), `${upgrade}${GET}`);
    expect(outcome.error).toBeNull();
    expect(outcome.messages.map((message) => message.head.target)).toEqual(['/ws', '/']);
  });

  it('holds after an upgrade request with a body only once the body is through', () => {
    const parser = new RequestParser();
    const events = parser.push(
      Buffer.from(
        `POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nhi`,
      ),
    );
    expect(events.map((event) => event.kind)).toEqual(['head', 'body', 'end']);
    expect(parser.awaitingSwitch).toBe(true);
  });

  it('ignores Upgrade without the connection option, and in HTTP/1.0', () => {
    expect(head('GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n').upgrade).toBeNull();
    expect(head('GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n').upgrade).toBeNull();
  });

  it('refuses a switch answer when none is pending', () => {
    expect(() => new RequestParser().switchToTunnel()).toThrow(/no protocol switch/);
  });
});

describe('end of stream', () => {
  it('is clean between messages', () => {
    expect(parseToEnd(GET)).toMatchObject({ error: null, messages: [{ complete: true }] });
  });

  it('reports a message cut short', () => {
    expect(parseToEnd('GET / HTTP/1.1\r\nHost').error).toBe('incomplete-message');
    expect(parseToEnd('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabc').error).toBe(
      'incomplete-message',
    );
    expect(
      parseToEnd('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n').error,
    ).toBe('incomplete-message');
  });

  it('refuses data pushed after the end', () => {
    const parser = new RequestParser();
    parser.finish();
    expect(parser.push(Buffer.from(GET)).map((event) => event.kind === 'error' && event.error.code)).toEqual([
      'data-after-close',
    ]);
  });
});

describe('field values checked once, on the way to each LF', () => {
  const byte = (code: number) => String.fromCharCode(code);
  it('refuses every byte outside field text in a value, wherever it lies in the block and however it is cut', () => {
    for (let code = 0; code < 256; code++) {
      if (code === 0x0a || code === 0x0d) continue; // line endings: the bare-lf and bare-cr cases
      const outside = (code < 0x20 && code !== 0x09) || code === 0x7f;
      for (const text of [
        `GET / HTTP/1.1\r\nHost: a\r\nX: a${byte(code)}b\r\n\r\n`,
        `GET / HTTP/1.1\r\nX: a${byte(code)}\r\nHost: a\r\nY: b\r\n\r\n`,
        `\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX:${byte(code)}\r\n\r\n`,
      ]) {
        expect(parse(text).error, `byte ${code} in ${JSON.stringify(text)}`).toBe(
          outside ? 'invalid-header-value' : null,
        );
      }
    }
  });

  it('checks each block on its own: heads and trailer sections', () => {
    const outcome = parse(
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\tb\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n',
    );
    expect(outcome.messages.filter((message) => message.complete)).toHaveLength(1);
    expect(outcome.error).toBe('invalid-header-value');
    const trailer = parse(
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: \x7f\r\n\r\n',
    );
    expect(trailer.error).toBe('invalid-header-value');
  });
});
