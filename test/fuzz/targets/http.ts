// Fuzz targets of the HTTP/1.1 codec: request heads against the grammar of protocols/http/grammar/, chunk-size
// lines, request streams against llhttp (undici's build), and responses in any chunking.

import fc from 'fast-check';
import { parseChunkSize } from '../../../protocols/http/chunked.js';
import {
  DEFAULT_LIMITS,
  HttpParseError,
  type RequestEvent,
  RequestParser,
  type ResponseEvent,
  ResponseParser,
} from '../../../protocols/http/index.js';
import { collect, prng } from '../../protocols/http/streams.js';
import {
  applyMutations,
  Grammar,
  grammarInput,
  type Mutation,
  mutationArbitrary,
  shortenRuns,
} from '../grammar.js';
import { checkInput, SNIPPETS as DIFFERENTIAL_SNIPPETS, emptyStats, generateStream } from '../http.js';
import { cutAt, disagree, isRefusal, latin1, refusedOr } from '../oracle.js';
import { shrinkByDeletion } from '../shrink.js';
import type { FuzzTarget } from '../target.js';

let httpGrammar: Grammar | undefined;
export const httpMessages = (): Grammar => {
  httpGrammar ??= Grammar.load(['protocols/http/grammar/http-message.ebnf']);
  return httpGrammar;
};

/** What mutations insert: the differential's framing snippets, and the delimiters of request-targets. */
const SNIPPETS = [...DIFFERENTIAL_SNIPPETS, '%', '[', ']', '#', '/', '?', '@', '\\'];
const METHODS = ['GET', 'POST', 'HEAD', 'OPTIONS', 'CONNECT', 'PUT', 'DELETE'];
const FIELDS = [
  'Content-Length: 0',
  'Content-Length: 5',
  'Content-Length: 300',
  'Content-Length: 007',
  'Transfer-Encoding: chunked',
  'Transfer-Encoding: gzip, chunked',
  'Connection: close',
  'Connection: keep-alive, Upgrade',
  'Upgrade: websocket',
  'Expect: 100-continue',
];

function requestHeadArb(): fc.Arbitrary<string> {
  const grammar = httpMessages();
  const form = fc.constantFrom(
    'origin_form',
    'absolute_form',
    'authority_form',
    'asterisk_form',
    'request_target',
  );
  const line = fc.oneof(
    grammar.arbitrary('request_line'),
    fc
      .tuple(
        fc.oneof(fc.constantFrom(...METHODS), grammar.arbitrary('method')),
        form.chain((rule) => grammar.arbitrary(rule)),
        fc.oneof(fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'), grammar.arbitrary('HTTP_version')),
      )
      .map((parts) => parts.join(' ')),
  );
  const field = fc.oneof(
    { weight: 3, arbitrary: grammar.arbitrary('field_line') },
    { weight: 2, arbitrary: fc.constantFrom(...FIELDS) },
    { weight: 1, arbitrary: grammar.arbitrary('host_value').map((host) => `Host: ${host}`) },
  );
  const host = fc.option(
    grammar.arbitrary('host_value').map((value) => `Host: ${value}`),
    { freq: 5, nil: null },
  );
  const valid = fc
    .tuple(line, host, fc.array(field, { maxLength: 4 }))
    .map(
      ([start, hostLine, fields]) =>
        `${[start, ...(hostLine ? [hostLine] : []), ...fields].join('\r\n')}\r\n\r\n`,
    );
  return fc.oneof(
    valid,
    fc
      .tuple(valid, fc.array(mutationOf(), { minLength: 1, maxLength: 2 }))
      .map(([text, mutations]) => applyHeadMutations(text, mutations)),
  );
}

// Near misses of whole heads: the grammar's mutations, with limits and swaps of the head's own rules.
const mutationOf = (): fc.Arbitrary<Mutation> =>
  mutationArbitrary(httpMessages(), {
    snippets: SNIPPETS,
    boundaries: [DEFAULT_LIMITS.maxLineBytes + 2, DEFAULT_LIMITS.maxHeaderBytes],
    swapRules: [
      'token',
      'request_target',
      'field_value',
      'host_value',
      'uri_host',
      'HTTP_version',
      'field_line',
    ],
  });
const applyHeadMutations = (text: string, mutations: Mutation[]): string =>
  applyMutations(text, mutations, httpMessages(), 'request_head');

interface HeadParts {
  method: string;
  target: string;
  version: string;
  fields: { name: string; value: string }[];
}

/** Without surrounding SP and HTAB (a regular expression for this is quadratic on long runs of them). */
function trimWhitespace(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && (text[start] === ' ' || text[start] === '\t')) start++;
  while (end > start && (text[end - 1] === ' ' || text[end - 1] === '\t')) end--;
  return text.slice(start, end);
}

/** The parts of a head the grammar derives (so lines split on CRLF, the start line on SP, fields on ":"). */
function partsOf(head: string): HeadParts {
  const [start = '', ...lines] = head.slice(0, -4).split('\r\n');
  const [method = '', target = '', version = ''] = start.split(' ');
  const fields = lines.map((line) => {
    const colon = line.indexOf(':');
    return { name: line.slice(0, colon), value: trimWhitespace(line.slice(colon + 1)) };
  });
  return { method, target, version, fields };
}

const named = (parts: HeadParts, name: string) =>
  parts.fields.filter((field) => field.name.toLowerCase() === name).map((field) => field.value);

/** Whether a request-target has the form RFC 9112 §3.2 gives its method, as the codec narrows the forms. */
function targetFormFits(parts: HeadParts): boolean {
  const grammar = httpMessages();
  const { method, target } = parts;
  if (method === 'CONNECT') {
    // authority-form; the codec wants a port of 1 to 5 digits (an empty or longer one names no port).
    return grammar.accepts('authority_form', target) && /:[0-9]{1,5}$/.test(target);
  }
  if (target === '*') return method === 'OPTIONS';
  if (grammar.accepts('origin_form', target)) return true;
  // absolute-form: the codec takes only http(s) URIs with an authority and no userinfo (RFC 9110 §4.2.4).
  return (
    grammar.accepts('absolute_form', target) &&
    /^https?:\/\/(?:\[[0-9A-Fa-f:.]+\]|[^/?@[\]:]+)(?::[0-9]*)?(?:[/?]|$)/i.test(target)
  );
}

/**
 * Why a grammatical head may still be refused with `code`: the rules of RFC 9110/9112 that a context-free grammar
 * cannot say, and the codec's documented strictness (protocols/http/README.md). Null when none applies: a finding.
 */
function refusalReason(code: string, head: string, parts: HeadParts): string | null {
  const hosts = named(parts, 'host');
  const lengths = named(parts, 'content-length');
  const codings = named(parts, 'transfer-encoding');
  const lines = head.split('\r\n');
  switch (code) {
    case 'unsupported-version':
      return /^HTTP\/1\.[01]$/.test(parts.version) ? null : 'only HTTP/1.0 and HTTP/1.1 are spoken';
    case 'invalid-target':
      return targetFormFits(parts) ? null : 'the request-target form does not fit the method (RFC 9112 §3.2)';
    case 'missing-host':
      return hosts.length === 0 && parts.version === 'HTTP/1.1' ? 'HTTP/1.1 requires Host' : null;
    case 'duplicate-host':
      return hosts.length > 1 ? 'one Host only (RFC 9112 §3.2)' : null;
    case 'invalid-host':
      return hosts.some((value) => !httpMessages().accepts('host_value', value))
        ? 'Host is uri-host[:port]'
        : null;
    case 'invalid-content-length':
      return lengths.some((value) => !/^[0-9]{1,16}$/.test(value) || !Number.isSafeInteger(Number(value)))
        ? 'Content-Length is 1 to 16 digits'
        : null;
    case 'duplicate-content-length':
      return lengths.length > 1 ? 'one Content-Length only' : null;
    case 'content-length-with-transfer-encoding':
      return lengths.length > 0 && codings.length > 0 ? 'Content-Length with Transfer-Encoding' : null;
    case 'invalid-transfer-encoding':
      return codings.length > 0 ? 'Transfer-Encoding: known codings, once, chunked last' : null;
    case 'transfer-encoding-in-http10':
      return codings.length > 0 && parts.version === 'HTTP/1.0' ? 'no Transfer-Encoding in HTTP/1.0' : null;
    case 'invalid-connection':
      return named(parts, 'connection').length > 0 ? 'Connection options are tokens' : null;
    case 'invalid-connect':
      return parts.method === 'CONNECT' && (codings.length > 0 || lengths.some((v) => v !== '0'))
        ? 'CONNECT has no body'
        : null;
    case 'line-too-long':
      return (lines[0]?.length ?? 0) > DEFAULT_LIMITS.maxLineBytes ? 'request line over the limit' : null;
    case 'headers-too-large':
      return head.length - (lines[0]?.length ?? 0) > DEFAULT_LIMITS.maxHeaderBytes
        ? 'field lines over the limit'
        : null;
    case 'too-many-headers':
      return parts.fields.length > DEFAULT_LIMITS.maxHeaders ? 'more fields than the limit' : null;
    default:
      return null;
  }
}

/**
 * Where the codec accepts what the grammar does not, knowingly (protocols/http/README.md): `[` and `]` in a path or
 * query, which clients send unencoded (PHP-style `a[]=1`) and the mediator forwards byte for byte.
 */
function acceptanceReason(head: string): string | null {
  const lineEnd = head.indexOf('\r\n');
  const [method, target, version] = head.slice(0, lineEnd).split(' ');
  const bracketsEncoded = (target ?? '')
    .replace(/^(https?:\/\/\[[^\]]*\])/i, '$1')
    .replace(/(?<=[/?].*)[[\]]/g, (c) => (c === '[' ? '%5B' : '%5D'));
  const again = `${method} ${bracketsEncoded} ${version}${head.slice(lineEnd)}`;
  return again !== head && httpMessages().accepts('request_head', again) ? '[ or ] in a path or query' : null;
}

export const requestHeadTarget: FuzzTarget<{ head: string; cuts: number[] }> = {
  name: 'http-request-head',
  codec: 'http',
  description:
    'request heads in any chunking: accepted only if http-message.ebnf derives them, refused only for a stated rule',
  sources: [
    'protocols/http/request-parser.ts',
    'protocols/http/start-line.ts',
    'protocols/http/field-lines.ts',
    'protocols/http/fields.ts',
    'protocols/http/line-reader.ts',
    'protocols/http/message-parser.ts',
    'protocols/http/chars.ts',
  ],
  ciRuns: 10000,
  minBehaviours: 20,
  arbitrary() {
    return fc.record({ head: requestHeadArb(), cuts: fc.array(fc.nat(), { maxLength: 5 }) });
  },
  check({ head: text, cuts }) {
    const parser = new RequestParser();
    const events: RequestEvent[] = cutAt(latin1(text), cuts).flatMap((chunk) => parser.push(chunk));
    const first = events[0];
    const trimmed = text.replace(/^(?:\r\n)+/, '');
    const end = trimmed.indexOf('\r\n\r\n');
    const head = end === -1 ? trimmed : trimmed.slice(0, end + 4);
    const tree = end === -1 ? null : httpMessages().parse('request_head', shortenRuns(head));
    if (first?.kind === 'head') {
      if (!tree && !acceptanceReason(head))
        disagree('the request parser accepted a head the grammar does not derive', {
          head,
          parsed: first.head,
        });
      const hosts = first.head.headers.filter((h) => h.name.toLowerCase() === 'host');
      for (const { value } of hosts)
        if (!httpMessages().accepts('host_value', value))
          disagree('the request parser accepted a Host value that is not uri-host[:port]', { head, value });
      return 'accepted';
    }
    if (first?.kind !== 'error') return 'incomplete';
    const { code } = first.error;
    if (tree && !refusalReason(code, head, partsOf(head)))
      disagree(`the request parser refused a grammatical head (${code}) for no stated reason`, {
        head,
        error: first.error.message,
      });
    return `refused:${code}`;
  },
};

export const chunkLineTarget: FuzzTarget<string> = {
  name: 'http-chunk-line',
  codec: 'http',
  description:
    'chunk-size lines: parseChunkSize agrees with chunk_line of the grammar, but for its stated strictness',
  sources: ['protocols/http/chunked.ts'],
  ciRuns: 15000,
  minBehaviours: 5,
  arbitrary() {
    return grammarInput(httpMessages(), 'chunk_line', {
      snippets: [...SNIPPETS, '0x', '-', '+', 'g'],
      boundaries: [16, 17],
      swapRules: ['chunk_size', 'chunk_ext_name', 'chunk_ext_val', 'quoted_string', 'token'],
    });
  },
  check(line) {
    const bytes = latin1(line);
    const size = refusedOr(HttpParseError, () => parseChunkSize(bytes, 0, bytes.length));
    const grammatical = httpMessages().accepts('chunk_line', line);
    const digits = /^[0-9A-Fa-f]*/.exec(line)?.[0] ?? '';
    // Stricter than the grammar, as documented: no whitespace (BWS) anywhere, at most 16 digits, below 2^53.
    const withinStrictness =
      !/[ \t]/.test(line) && digits.length <= 16 && Number.isSafeInteger(Number.parseInt(digits || '0', 16));
    if (!isRefusal(size)) {
      if (!grammatical)
        disagree('parseChunkSize accepted a line the grammar does not derive', { line, size });
      if (size !== Number.parseInt(digits, 16)) disagree('parseChunkSize read a wrong size', { line, size });
      return 'accepted';
    }
    if (grammatical && withinStrictness)
      disagree(`parseChunkSize refused a grammatical line (${size.refused})`, { line });
    return `refused:${size.refused}${grammatical ? ':strict' : ''}`;
  },
};

export const llhttpTarget: FuzzTarget<{ stream: string; chunkSeed: number }> = {
  name: 'http-llhttp',
  codec: 'http',
  description:
    'request streams against llhttp: what we accept, llhttp reads alike, raw and as we re-serialize it',
  sources: [
    'protocols/http/request-parser.ts',
    'protocols/http/message-parser.ts',
    'protocols/http/chunked.ts',
    'protocols/http/serializer.ts',
    'protocols/http/fields.ts',
    'protocols/http/field-lines.ts',
    'protocols/http/start-line.ts',
    'protocols/http/line-reader.ts',
  ],
  ciRuns: 10000,
  minBehaviours: 9,
  arbitrary() {
    const generated = fc.nat().map((seed) => generateStream(prng(seed)).toString('latin1'));
    return fc.record({ stream: shrinkByDeletion(generated), chunkSeed: fc.nat() });
  },
  check({ stream, chunkSeed }) {
    const stats = emptyStats();
    checkInput(latin1(stream), prng(chunkSeed), stats);
    const [stricter] = Object.keys(stats.llhttpStricter);
    const [weStricter] = Object.keys(stats.weStricter);
    if (stricter) return `llhttp-stricter:${stricter}`;
    if (weStricter) return `we-stricter:${weStricter}`;
    return stats.accepted > 0 ? 'accepted' : 'refused';
  },
};

/** Responses to a list of requests, from the grammar (heads) with bodies in each framing. */
function responseStreamArb(): fc.Arbitrary<{ requests: string[]; stream: string; cuts: number[] }> {
  const grammar = httpMessages();
  const status = fc.oneof(
    fc.constantFrom('200', '204', '304', '101', '100', '404', '500'),
    grammar.arbitrary('status_code'),
  );
  const head = fc
    .tuple(
      fc.oneof(fc.constantFrom('HTTP/1.1', 'HTTP/1.0'), grammar.arbitrary('HTTP_version')),
      status,
      fc.option(grammar.arbitrary('reason_phrase'), { nil: '' }),
      fc.array(fc.oneof(grammar.arbitrary('field_line'), fc.constantFrom(...FIELDS)), { maxLength: 3 }),
    )
    .map(
      ([version, code, reason, fields]) =>
        `${version} ${code} ${reason}\r\n${fields.map((f) => `${f}\r\n`).join('')}\r\n`,
    );
  const body = fc.constantFrom(
    '',
    'abcde',
    '5\r\nabcde\r\n0\r\n\r\n',
    '0\r\nX-T: 1\r\n\r\n',
    'x'.repeat(40),
    'y'.repeat(300),
  );
  const message = fc.tuple(head, body).map(([h, b]) => h + b);
  return fc.record({
    requests: fc.array(fc.constantFrom('GET', 'HEAD', 'CONNECT', 'GET+upgrade'), {
      minLength: 1,
      maxLength: 3,
    }),
    stream: fc.array(message, { minLength: 1, maxLength: 3 }).map((messages) => messages.join('')),
    cuts: fc.array(fc.nat(), { maxLength: 5 }),
  });
}

export const responseTarget: FuzzTarget<{ requests: string[]; stream: string; cuts: number[] }> = {
  name: 'http-response',
  codec: 'http',
  description:
    'responses to GET, HEAD, CONNECT and upgrades: the same outcome in any chunking, grammatical heads only',
  sources: [
    'protocols/http/response-parser.ts',
    'protocols/http/message-parser.ts',
    'protocols/http/start-line.ts',
  ],
  ciRuns: 12000,
  minBehaviours: 12,
  arbitrary: responseStreamArb,
  check({ requests, stream, cuts }) {
    const expecting = (parser: ResponseParser) => {
      for (const request of requests)
        parser.expect({
          method: request.replace('+upgrade', ''),
          upgrade: request.endsWith('+upgrade') ? 'websocket' : null,
        });
      return parser;
    };
    const parse = (chunks: Buffer[]) => {
      const parser = expecting(new ResponseParser());
      return collect([...chunks.flatMap((chunk) => parser.push(chunk)), ...parser.finish()]);
    };
    const bytes = latin1(stream);
    const outcome = parse(cutAt(bytes, cuts));
    const whole = parse([bytes]);
    if (JSON.stringify(outcome) !== JSON.stringify(whole))
      disagree('the response outcome depends on the chunking', { stream, cuts, outcome, whole });
    // Skipping the rest of a Content-Length body (as the REST session does once it went on in the kernel) gives
    // the same messages, with the skipped bytes missing from their bodies only.
    const step = 1 + ((cuts[0] ?? 0) % 23);
    const skipper = expecting(new ResponseParser());
    const events: ResponseEvent[] = [];
    let skipped = 0;
    for (let at = 0; at < bytes.length; ) {
      const remaining = skipper.bodyRemaining;
      if (remaining > 0) {
        const n = Math.min(remaining, bytes.length - at, step * 3);
        events.push(...skipper.skipBody(n));
        skipped += n;
        at += n;
      } else {
        events.push(...skipper.push(bytes.subarray(at, at + step)));
        at += step;
      }
    }
    const skipping = collect([...events, ...skipper.finish()]);
    const withoutBodies = (o: typeof whole) =>
      JSON.stringify({ ...o, messages: o.messages.map((m) => ({ ...m, body: '' })) });
    const bodyBytes = (o: typeof whole) => o.messages.reduce((n, m) => n + m.body.length, 0);
    if (
      withoutBodies(skipping) !== withoutBodies(whole) ||
      bodyBytes(skipping) + skipped !== bodyBytes(whole)
    )
      disagree('skipping body bytes changes more than the bodies', { stream, step, skipping, whole });
    for (const message of outcome.messages) {
      const { version, status, reason, headers } = message.head;
      const head = `HTTP/${version} ${status} ${reason}\r\n${headers.map((h) => `${h.name}: ${h.value}\r\n`).join('')}\r\n`;
      if (!httpMessages().accepts('response_head', head))
        disagree('the response parser accepted a head the grammar does not derive', { stream, head });
    }
    return outcome.error ? `refused:${outcome.error}` : `messages:${outcome.messages.length}`;
  },
};
