// Differential fuzzing of the HTTP/1.1 request parser against llhttp (undici's WASM build).
// Request streams are generated from a grammar with tricky variations, then mutated at the byte level, and fed
// in random chunkings. Whenever our parser accepts a message, llhttp must read the same method, target,
// fields and body from the original bytes and from our normalized re-serialization; and our outcome must not
// depend on the chunking. A finding throws with the reproducing input.
import {
  frameBodyEvent,
  type HttpHeader,
  type RequestEvent,
  type RequestHead,
  RequestParser,
  serializeRequestHead,
} from '../../protocols/http/index.js';
import { LLHTTP_METHODS, type LlhttpMessage, llhttpParseRequests } from '../protocols/http/llhttp.js';
import { collect, type Outcome, prng, randomChunks } from '../protocols/http/streams.js';

type Random = () => number;

const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const chance = (random: Random, probability: number): boolean => random() < probability;
const integer = (random: Random, max: number): number => Math.floor(random() * (max + 1));

/** Each choice is usually one of the good options and sometimes (10%) one that some parser gets wrong. */
function variant(random: Random, good: readonly string[], odd: readonly string[]): string {
  return chance(random, 0.1) ? pick(random, odd) : pick(random, good);
}

const METHODS = [
  ['GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'PROPFIND'],
  ['CONNECT', 'get', 'FOO'],
] as const;
const TARGETS = [
  ['/', '/a/b?c=d&e', '/%20x', "/!$&'()*+,;=:@", '/q?a[]=1', 'http://h:8/p?q', 'http://[::1]:8?q'],
  [
    '/a#frag',
    '*',
    'h:443',
    '/a b',
    '/\x7f',
    'HTTP://H/',
    'htt1://h/',
    'http://u@h/',
    '/{}',
    "http://a!$&'()*+,;=%/",
  ],
] as const;
const VERSIONS = [
  ['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'],
  ['HTTP/1.2', 'HTTP/2.0', 'http/1.1', 'HTTP/1.10'],
] as const;
const HOSTS = [
  ['h', 'h:8', '', '[::1]:8'],
  ['h h', 'u@h', 'h/p'],
] as const;
const NAMES = [
  'X-A',
  'Accept',
  'User-Agent',
  'Content-Type',
  'X_PV_Client',
  'x-pv-role',
  'Cookie',
  'Te',
  'Trailer',
  'Via',
];
const VALUES = [
  ['v', '', 'a b', 'a\tb', 'caf\xe9', '"q"', 'x, y', '*/*', ' padded ', '\tt'],
  ['\xa0', '\x01', '\x00', 'a\rb'],
] as const;
const CODINGS = [
  ['chunked', 'CHUNKED', 'gzip, chunked', '\tchunked', 'chunked '],
  ['chunked, identity', 'identity', 'xchunked', 'chunked,', 'chunked, chunked'],
] as const;
const EXTENSIONS = [
  ['', '', '', ';a', ';a=b', ';a="q \\" x"', ';a=b;c'],
  ['; a', ';a=', ';"', ' ;a', ';a="\x01"'],
] as const;
const TRAILERS = [
  ['X-Sum', 'X_T', 'Checksum'],
  ['Content-Length', 'Host', 'Transfer-Encoding'],
] as const;
/** Bytes and snippets that mutations insert: framing and syntax characters parsers disagree on. */
export const SNIPPETS = [
  '\r',
  '\n',
  '\r\n',
  ' ',
  '\t',
  '\x00',
  '\x0b',
  '\x7f',
  '\xff',
  ',',
  ':',
  ';',
  '"',
  '=',
  '0',
  '1',
  'a',
  'F',
  '-',
  '+',
  'x',
  'chunked',
  'Content-Length: 0\r\n',
  'Content-Length: 5\r\n',
  'Transfer-Encoding: chunked\r\n',
  'Host: b\r\n',
  '\r\n\r\n',
  '0\r\n\r\n',
  ' \r\n',
  'Connection: close\r\n',
  'Connection: upgrade\r\nUpgrade: x\r\n',
  'Expect: 100-continue\r\n',
];

function generateBody(random: Random): string {
  return 'abcdefghij\r\n0;\x00\xff'.slice(0, integer(random, 14)).repeat(1 + integer(random, 2));
}

function generateChunked(random: Random, body: string): string {
  let out = '';
  let rest = body;
  while (rest.length > 0) {
    const size = 1 + integer(random, rest.length - 1);
    let hex = size.toString(16);
    if (chance(random, 0.2)) hex = hex.toUpperCase();
    if (chance(random, 0.1)) hex = `${'0'.repeat(integer(random, 17))}${hex}`;
    out += `${hex}${variant(random, ...EXTENSIONS)}\r\n${rest.slice(0, size)}\r\n`;
    rest = rest.slice(size);
  }
  out += `${chance(random, 0.1) ? '000' : '0'}${variant(random, ...EXTENSIONS)}\r\n`;
  for (let i = integer(random, 2); i > 0; i--)
    out += `${variant(random, ...TRAILERS)}: ${variant(random, ...VALUES)}\r\n`;
  return `${out}\r\n`;
}

/** One request, mostly well-formed, with the variations that matter for framing. */
function generateRequest(random: Random): string {
  const lines = [
    `${variant(random, ...METHODS)} ${variant(random, ...TARGETS)} ${variant(random, ...VERSIONS)}`,
  ];
  if (!chance(random, 0.05))
    lines.push(`${pick(random, ['Host', 'host', 'HOST'])}: ${variant(random, ...HOSTS)}`);
  for (let i = integer(random, 3); i > 0; i--) {
    lines.push(`${pick(random, NAMES)}:${pick(random, [' ', '', '\t', '  '])}${variant(random, ...VALUES)}`);
  }
  const body = generateBody(random);
  const framing = pick(random, ['none', 'length', 'length', 'chunked', 'chunked', 'both']);
  let content = '';
  if (framing === 'length' || framing === 'both') {
    const declared = variant(
      random,
      [String(body.length)],
      [`${body.length}, ${body.length}`, `+${body.length}`, '0', `00${body.length}`],
    );
    lines.push(`Content-Length: ${declared}`);
    if (chance(random, 0.05)) lines.push(`Content-Length: ${declared}`);
    content = body;
  }
  if (framing === 'chunked' || framing === 'both') {
    lines.push(`${pick(random, ['Transfer-Encoding', 'transfer-encoding'])}: ${variant(random, ...CODINGS)}`);
    content = generateChunked(random, body);
  }
  if (chance(random, 0.15))
    lines.push(
      pick(random, [
        'Connection: close',
        'Connection: keep-alive',
        'Connection: Upgrade\r\nUpgrade: websocket',
        'Expect: 100-continue',
      ]),
    );
  if (chance(random, 0.3)) lines.sort(() => random() - 0.5);
  return `${lines.join('\r\n')}\r\n\r\n${content}`;
}

function mutate(random: Random, text: string): string {
  let out = text;
  for (let i = integer(random, 3); i > 0; i--) {
    const at = integer(random, out.length);
    switch (integer(random, 3)) {
      case 0:
        out = out.slice(0, at) + pick(random, SNIPPETS) + out.slice(at);
        break;
      case 1:
        out = out.slice(0, at) + out.slice(at + 1 + integer(random, 2));
        break;
      case 2:
        out = out.slice(0, at) + pick(random, SNIPPETS) + out.slice(at + 1);
        break;
      default: {
        const from = integer(random, out.length);
        out = out.slice(0, at) + out.slice(from, from + integer(random, 20)) + out.slice(at);
      }
    }
  }
  return out;
}

export function generateStream(random: Random): Buffer {
  let text = chance(random, 0.05) ? '\r\n' : '';
  for (let i = 1 + integer(random, 2); i > 0; i--) text += generateRequest(random);
  if (chance(random, 0.5)) text = mutate(random, text);
  return Buffer.from(text, 'latin1');
}

/** Messages compared with llhttp: up to the first that switches protocols, after which the two differ by design. */
function comparable(outcome: Outcome<RequestHead>): Outcome<RequestHead>['messages'] {
  const complete = outcome.messages.filter((message) => message.complete);
  const switchAt = complete.findIndex(
    (message) => message.head.method === 'CONNECT' || message.head.upgrade !== null,
  );
  return switchAt === -1 ? complete : complete.slice(0, switchAt + 1);
}

const view = (message: Outcome<RequestHead>['messages'][number]) => ({
  method: message.head.method,
  target: message.head.target,
  headers: message.head.headers,
  body: message.body,
  trailers: message.trailers,
});
const llhttpView = (message: LlhttpMessage | undefined) =>
  message && {
    method: message.method,
    target: message.target,
    headers: message.headers as HttpHeader[],
    body: message.body.toString('latin1'),
    trailers: message.trailers,
  };

function normalize(events: readonly RequestEvent[], count: number): Buffer {
  const out: Buffer[] = [];
  let head: RequestHead | null = null;
  let ended = 0;
  for (const event of events) {
    if (ended === count) break;
    if (event.kind === 'head') {
      head = event.head;
      out.push(serializeRequestHead(head));
    } else if ((event.kind === 'body' || event.kind === 'end') && head !== null) {
      out.push(...frameBodyEvent(head.framing, event));
      if (event.kind === 'end') ended++;
    }
  }
  return Buffer.concat(out);
}

export interface DifferentialStats {
  inputs: number;
  /** Inputs where our parser accepted at least one message. */
  accepted: number;
  /** Messages compared with llhttp. */
  compared: number;
  /** llhttp refused a message we accept, for a reason where we are knowingly more lenient (by llhttp error). */
  llhttpStricter: Record<string, number>;
  /** We refused a stream llhttp read whole, by our error code: where we are stricter. */
  weStricter: Record<string, number>;
}

const show = (bytes: Buffer) => JSON.stringify(bytes.toString('latin1'));

function finding(what: string, input: Buffer, details: unknown): Error {
  return new Error(
    `HTTP differential finding: ${what}\ninput: ${show(input)}\n${JSON.stringify(details, null, 1)}`,
  );
}

/** Checks one input; throws a finding, else updates the stats. */
export function checkInput(input: Buffer, random: Random, stats: DifferentialStats): void {
  stats.inputs++;
  const chunksA = randomChunks(input, random);
  const chunksB = chance(random, 0.1)
    ? Array.from(input, (_, i) => input.subarray(i, i + 1))
    : randomChunks(input, random);
  const parse = (chunks: Buffer[]) => {
    const parser = new RequestParser();
    return chunks.flatMap((chunk) => parser.push(chunk));
  };
  const events = parse(chunksA);
  const ours = collect(events);
  const again = collect(parse(chunksB));
  if (JSON.stringify(again) !== JSON.stringify(ours)) {
    throw finding('the outcome depends on the chunking', input, {
      chunksA: chunksA.map(show),
      chunksB: chunksB.map(show),
      ours,
      again,
    });
  }
  const messages = comparable(ours);
  const oracle = llhttpParseRequests(randomChunks(input, random));
  if (messages.length === 0) {
    if (ours.error !== null && oracle.error === null && !oracle.upgraded && oracle.messages.length > 0) {
      stats.weStricter[ours.error] = (stats.weStricter[ours.error] ?? 0) + 1;
    }
    return;
  }
  stats.accepted++;
  for (const [index, message] of messages.entries()) {
    const theirs = oracle.messages[index];
    if (theirs === undefined) {
      const reason = oracle.error && knownLlhttpStrictness(input, message.head, oracle.error.code);
      if (reason) {
        stats.llhttpStricter[reason] = (stats.llhttpStricter[reason] ?? 0) + 1;
        return;
      }
      throw finding(`llhttp did not read message ${index} that we accept`, input, {
        ours: view(message),
        llhttp: oracle,
      });
    }
    stats.compared++;
    if (JSON.stringify(llhttpView(theirs)) !== JSON.stringify(view(message))) {
      throw finding(`llhttp reads message ${index} differently`, input, {
        ours: view(message),
        llhttp: llhttpView(theirs),
      });
    }
  }
  const normalized = normalize(events, messages.length);
  const reread = llhttpParseRequests([normalized]);
  const rereadByUs = comparable(collect(new RequestParser().push(normalized)));
  for (const [index, message] of messages.entries()) {
    if (JSON.stringify(llhttpView(reread.messages[index])) !== JSON.stringify(view(message))) {
      throw finding(`llhttp reads our normalized message ${index} differently`, input, {
        normalized: show(normalized),
        ours: view(message),
        llhttp: reread,
      });
    }
    if (JSON.stringify(rereadByUs[index] && view(rereadByUs[index])) !== JSON.stringify(view(message))) {
      throw finding(`we read our normalized message ${index} differently`, input, {
        normalized: show(normalized),
      });
    }
  }
}

/**
 * Where llhttp refuses what we knowingly accept, by RFC 9110/9112 and without risk since the mediator forwards
 * the normalized form (which llhttp must and does read alike). Returns the reason, or null for a finding.
 */
function knownLlhttpStrictness(input: Buffer, head: RequestHead, llhttpError: string): string | null {
  // llhttp knows a fixed list of methods; any token is a method.
  if (llhttpError === 'INVALID_METHOD' && !LLHTTP_METHODS.has(head.method)) return 'method unknown to llhttp';
  // llhttp takes only SP as whitespace around the values that frame a body; OWS is SP or HTAB. Our normalized
  // form has no whitespace there, so the back end reads it as we do.
  const framingError =
    llhttpError === 'INVALID_CONTENT_LENGTH' || llhttpError === 'INVALID_TRANSFER_ENCODING';
  if (framingError && /(?:content-length|transfer-encoding):[^\r]*\t/i.test(input.toString('latin1'))) {
    return 'HTAB around Content-Length or Transfer-Encoding';
  }
  return null;
}

export function emptyStats(): DifferentialStats {
  return { inputs: 0, accepted: 0, compared: 0, llhttpStricter: {}, weStricter: {} };
}

/**
 * A differential run of a fixed number of inputs from a seed. `capMs` is a safety cap only: hitting it before
 * `inputs` were tried throws (a slow machine must not quietly test less).
 */
export function runDifferential(options: { seed: number; inputs: number; capMs: number }): DifferentialStats {
  const random = prng(options.seed);
  const stats = emptyStats();
  const started = Date.now();
  while (stats.inputs < options.inputs) {
    if (Date.now() - started > options.capMs)
      throw new Error(
        `differential run (seed ${options.seed}) hit its ${options.capMs} ms safety cap after ${stats.inputs} of ${options.inputs} inputs`,
      );
    try {
      checkInput(generateStream(random), random, stats);
    } catch (error) {
      // The stream is printed whole; the http-llhttp fuzz target replays the same generator and shrinks a finding.
      (error as Error).message =
        `differential run seed ${options.seed}, input ${stats.inputs}: ${(error as Error).message}\n` +
        'for a shrunk reproducer: npm run fuzz -- http-llhttp';
      throw error;
    }
  }
  return stats;
}
