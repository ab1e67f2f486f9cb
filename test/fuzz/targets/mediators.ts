// Fuzz targets of the mediators' protocol filters, in process with real fds: the D-Bus message filter (framing and
// fd accounting), the D-Bus SASL gate (what reaches the bus), the REST connection (what reaches the provider).
import { closeSync } from 'node:fs';
import fc from 'fast-check';
import type { Logger } from '../../../log/logger.js';
import { type AuthOutput, AuthRefusal, SaslGate } from '../../../mediators/dbus-auth.js';
import { DBusMessageFilter } from '../../../mediators/dbus-messages.js';
import { type FilterSink, type Relay, RelayRejection } from '../../../mediators/relay.js';
import {
  CLIENT_FIELD,
  IDENTITY_FIELDS,
  RestConnection,
  ROLE_FIELD,
} from '../../../mediators/rest-connection.js';
import { restPolicyOf } from '../../../mediators/rest-policy.js';
import { DBusFramer, marshal, uidToHex } from '../../../protocols/dbus/index.js';
import { parseAllow } from '../../../protocols/graph/allow.js';
import { fieldNameKey, normalizeTarget, RequestParser } from '../../../protocols/http/index.js';
import { messageArb } from '../../protocols/dbus/arbitraries.js';
import { collect, prng } from '../../protocols/http/streams.js';
import { checkFdsAccountedFor, openFds } from '../fds.js';
import { grammarInput } from '../grammar.js';
import { generateStream } from '../http.js';
import { cutAt, disagree, latin1 } from '../oracle.js';
import type { FuzzTarget } from '../target.js';
import { saslLines } from './dbus.js';

export const quiet: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return quiet;
  },
};

type FilterInput = {
  messages: string[];
  /** Per message: fds sent with its first byte, as an offset from what it declares (0 = exactly right). */
  fdOffsets: number[];
  cuts: number[];
  negotiated: boolean;
};

export const dbusFilterTarget: FuzzTarget<FilterInput> = {
  name: 'dbus-filter',
  codec: 'dbus',
  description:
    'the D-Bus message filter: whole messages with exactly their fds, every fd forwarded or closed',
  sources: ['mediators/dbus-messages.ts', 'protocols/dbus/framer.ts'],
  ciRuns: 3000,
  minBehaviours: 5,
  arbitrary() {
    return fc.record({
      messages: fc.array(
        fc
          .tuple(messageArb(), fc.constantFrom<'l' | 'B'>('l', 'B'))
          .map(([m, e]) => marshal(m, e).toString('latin1')),
        { minLength: 1, maxLength: 4 },
      ),
      fdOffsets: fc.array(fc.constantFrom(0, 0, 0, -1, 1), { maxLength: 4 }),
      cuts: fc.array(fc.nat(), { maxLength: 6 }),
      negotiated: fc.boolean(),
    });
  },
  check({ messages, fdOffsets, cuts, negotiated }) {
    const bytes = messages.map(latin1);
    const declared = bytes.map((message) => new DBusFramer().push(message)[0]?.unixFds ?? 0);
    const stream = Buffer.concat(bytes);
    // Where each message starts, and how many fds travel with its first byte.
    const starts: number[] = [];
    let at = 0;
    for (const message of bytes) {
      starts.push(at);
      at += message.length;
    }
    const counts = declared.map((n, i) => Math.max(0, n + (fdOffsets[i] ?? 0)));
    const given = openFds(counts.reduce((a, b) => a + b, 0));
    const fdsAt = new Map<number, number[]>();
    let next = 0;
    starts.forEach((start, i) => {
      fdsAt.set(start, given.slice(next, next + (counts[i] as number)));
      next += counts[i] as number;
    });
    const forwards: { data: Buffer; fds: number[] }[] = [];
    const sink: FilterSink = {
      forward: (data, fds) => forwards.push({ data: Buffer.from(data), fds: fds ?? [] }),
      reply: () => disagree('the message filter replied', {}),
    };
    const filter = new DBusMessageFilter(negotiated);
    let outcome = 'accepted';
    let offset = 0;
    const handed: number[] = [];
    try {
      for (const chunk of cutAt(stream, cuts)) {
        // Fds ride with the chunk that holds their message's first byte (as the kernel delivers them).
        const fds = starts
          .filter((s) => s >= offset && s < offset + chunk.length)
          .flatMap((s) => fdsAt.get(s) ?? []);
        offset += chunk.length;
        handed.push(...fds);
        filter.push({ data: chunk, fds }, sink);
      }
      filter.end();
    } catch (error) {
      if (!(error instanceof RelayRejection)) throw error;
      outcome = 'rejected';
    }
    // The relay disposes of the filter when the connection is over: what it still holds is closed then.
    filter.dispose();
    const sent = forwards.flatMap((f) => f.fds);
    // Fds of chunks never pushed (after a rejection) are the relay's to close, as it does.
    for (const fd of given) if (!handed.includes(fd)) closeSync(fd);
    const problem = checkFdsAccountedFor(handed, sent);
    if (problem) disagree(`dbus-filter: ${problem}`, { declared, counts, outcome });
    const out = Buffer.concat(forwards.map((f) => f.data));
    if (!stream.subarray(0, out.length).equals(out))
      disagree('dbus-filter: forwarded bytes are not the stream', {});
    for (const forward of forwards.filter((f) => f.fds.length > 0)) {
      const framed = new DBusFramer().push(forward.data);
      if (framed.length !== 1 || framed[0]?.unixFds !== forward.fds.length)
        disagree('dbus-filter: fds forwarded with other than exactly their message', {
          fds: forward.fds.length,
        });
    }
    const exact = counts.every((n, i) => n === declared[i]);
    const anyFds = counts.some((n) => n > 0);
    if (outcome === 'accepted' && !out.equals(stream))
      disagree('dbus-filter: accepted but held bytes back', {});
    if (exact && (negotiated || !anyFds) && outcome !== 'accepted')
      disagree('dbus-filter: refused well-formed messages with exactly their fds', { declared, negotiated });
    return `${outcome}:${exact ? 'exact' : 'off'}:${anyFds ? (negotiated ? 'fds' : 'fds-not-negotiated') : 'no-fds'}`;
  },
};

const ROLE_UID = 1001;
const ROLE_HEX = uidToHex(ROLE_UID);

type GateInput = { client: string; cuts: number[]; replies: string[] };

/** The bus's answer when the input gives none: what a bus answers to that line. */
function defaultReply(line: string): string {
  if (line.startsWith('AUTH') || line.startsWith('DATA')) return 'OK 0123456789abcdef0123456789abcdef';
  if (line.startsWith('NEGOTIATE_UNIX_FD')) return 'AGREE_UNIX_FD';
  return 'REJECTED EXTERNAL';
}

export const dbusGateTarget: FuzzTarget<GateInput> = {
  name: 'dbus-gate',
  codec: 'dbus',
  description:
    'the SASL gate: the bus hears only grammatical EXTERNAL lines with the role uid; the client only grammatical replies',
  sources: ['mediators/dbus-auth.ts', 'protocols/dbus/sasl.ts', 'protocols/dbus/sasl-decoder.ts'],
  ciRuns: 6000,
  minBehaviours: 7,
  arbitrary() {
    const grammar = saslLines();
    const line = grammarInput(grammar, 'client_line', {
      snippets: [' ', '\r\n', '\0', 'EXTERNAL', 'DBUS_COOKIE_SHA1', '30', ROLE_HEX, 'BEGIN', 'l\x01\0\x01'],
      swapRules: ['client_command', 'token'],
    });
    const common = fc.constantFrom(
      'AUTH EXTERNAL 30\r\n',
      'AUTH EXTERNAL\r\n',
      'AUTH\r\n',
      'DATA\r\n',
      'NEGOTIATE_UNIX_FD\r\n',
      'BEGIN\r\n',
    );
    const reply = fc.oneof(
      grammar.arbitrary('server_command'),
      fc.constantFrom('OK 1234', 'REJECTED EXTERNAL', 'DATA', 'ERROR', 'AGREE_UNIX_FD', 'garbage\x01'),
    );
    return fc.record({
      client: fc
        .array(fc.oneof(line, common), { maxLength: 6 })
        .map((lines) => `\0${lines.join('')}l\x01\0\x01`),
      cuts: fc.array(fc.nat(), { maxLength: 5 }),
      replies: fc.array(reply, { maxLength: 4 }),
    });
  },
  check({ client, cuts, replies }) {
    const gate = new SaslGate(ROLE_UID);
    const heard: string[] = [];
    const told: string[] = [];
    let okSeen = false;
    let nextReply = 0;
    const take = (out: AuthOutput) => {
      heard.push(...out.toBus.map((b) => b.toString('latin1')));
      told.push(...out.toClient.map((b) => b.toString('latin1')));
    };
    let outcome = 'waiting';
    let pushed = '';
    try {
      for (const chunk of cutAt(latin1(client), cuts)) {
        const out: AuthOutput = { toBus: [], toClient: [] };
        pushed += chunk.toString('latin1');
        gate.fromClient(chunk, out);
        take(out);
        while (gate.waitingForBus) {
          const lastLine = (heard.at(-1) ?? '').replace(/^\0/, '');
          const reply = replies[nextReply++] ?? defaultReply(lastLine);
          if (reply.startsWith('OK')) okSeen = true;
          const answer: AuthOutput = { toBus: [], toClient: [] };
          gate.fromBus(latin1(`${reply}\r\n`), answer);
          take(answer);
        }
        if (gate.finished) break;
      }
      if (gate.finished) outcome = 'finished';
    } catch (error) {
      if (!(error instanceof AuthRefusal)) throw error;
      if (error.reply && !saslLines().accepts('server_line', error.reply.toString('latin1')))
        disagree('the gate refused with a reply that is not a SASL line', {
          reply: error.reply.toString('latin1'),
        });
      outcome = 'refused';
    }
    heard.forEach((raw, i) => {
      if (raw.startsWith('\0') !== (i === 0))
        disagree('the NUL byte is not exactly the first byte the bus hears', { heard });
      const line = raw.replace(/^\0/, '');
      if (!saslLines().accepts('client_line', line))
        disagree('the bus heard a line that is not grammatical', { line });
      const [command, ...words] = line.slice(0, -2).split(' ');
      if (command === 'AUTH' && words[0] !== undefined && words[0] !== 'EXTERNAL')
        disagree('a mechanism other than EXTERNAL reached the bus', { line });
      const identity = command === 'AUTH' ? words[1] : command === 'DATA' ? words[0] : undefined;
      if (identity !== undefined && identity !== ROLE_HEX)
        disagree('an identity other than the role reached the bus', { line });
      if (command === 'BEGIN' && !okSeen) disagree('BEGIN reached the bus before it said OK', { heard });
    });
    for (const line of told) {
      if (!saslLines().accepts('server_line', line))
        disagree('the client was told a line that is not grammatical', { line });
      if (line.startsWith('REJECTED') && line.trim() !== 'REJECTED EXTERNAL' && line.trim() !== 'REJECTED')
        disagree('the client was offered a mechanism other than EXTERNAL', { line });
    }
    if (outcome === 'finished') {
      // What followed BEGIN is handed on exactly as it came.
      const rest = gate.remainder().toString('latin1');
      if (!pushed.endsWith(rest) || !pushed.slice(0, pushed.length - rest.length).endsWith('BEGIN\r\n'))
        disagree('the bytes after BEGIN are not handed on as they came', { pushed, rest });
    }
    return `${outcome}:${heard.length > 3 ? 'many' : heard.length}`;
  },
};

/**
 * `policy`: the link's role is narrowed by REST_POLICY, and `target` (when given) replaces the first request's
 * target, so that tricky paths meet the policy.
 */
type RestInput = { stream: string; cuts: number[]; policy?: boolean; target?: string };

const REST_POLICY = [{ role: 'viewer', methods: ['GET', 'HEAD'], paths: ['/a/*', '/k*'] }];
const TRICKY_TARGETS = [
  '/a/../b',
  '/a/%2e%2e/k',
  '/a/%2E%2E/%2e%2e/k',
  '/a/..%2Fk',
  '/a/..;/b',
  '/%61/b?x',
  '/a/./b/.',
  '/k/../../a/x',
  'http://h/a/../k?q',
  'http://h',
  '*',
];

/** Whether the reference reading of REST_POLICY allows a request the provider got. */
function policyAllows(method: string, target: string): boolean {
  const normalized = normalizeTarget(target);
  if (!normalized.ok || normalized.path === null) return false;
  const { path } = normalized;
  return ['GET', 'HEAD'].includes(method) && (path.startsWith('/a/') || path.startsWith('/k'));
}

/** A relay stand-in for the REST connection: it records what the connection asks of the relay. */
function relayRecorder(sink: FilterSink): Relay & { rejected: Error | null } {
  return {
    rejected: null,
    finish() {},
    sink: () => sink,
    hold() {},
    reject(_direction, reason) {
      this.rejected ??= reason;
    },
    close() {
      this.rejected ??= new Error('closed');
    },
    halfClose() {},
    transfer() {
      disagree('a small body was handed to a kernel transfer', {});
    },
    handOff() {
      disagree('a REST connection was handed to the addon', {});
      return false;
    },
  };
}

export const restConnectionTarget: FuzzTarget<RestInput> = {
  name: 'rest-connection',
  codec: 'http',
  description:
    'the REST connection end to end: every forwarded request carries exactly the link identity and parses alike',
  sources: ['mediators/rest-connection.ts', 'protocols/http/headers.ts', 'protocols/http/serializer.ts'],
  ciRuns: 10000,
  minBehaviours: 5,
  arbitrary() {
    const forged = fc.constantFrom(
      'X-PV-Client: evil\r\n',
      'x_pv_role: admin\r\n',
      'Connection: X-PV-Role\r\n',
      'X.PV.Client: e\r\n',
    );
    const generated = fc.nat().map((seed) => generateStream(prng(seed)).toString('latin1'));
    return fc.record(
      {
        stream: fc.tuple(generated, forged, fc.nat()).map(([text, field, where]) => {
          // A forged identity field slipped in after some request line.
          const lineEnd = text.indexOf('\r\n', where % Math.max(1, text.length));
          return lineEnd === -1 ? text : `${text.slice(0, lineEnd + 2)}${field}${text.slice(lineEnd + 2)}`;
        }),
        cuts: fc.array(fc.nat(), { maxLength: 5 }),
        policy: fc.boolean(),
        target: fc.constantFrom(...TRICKY_TARGETS),
      },
      { requiredKeys: ['stream', 'cuts'] },
    );
  },
  check({ stream: generated, cuts, policy = false, target }) {
    // The first request line's target replaced (the line keeps its method and version).
    const stream =
      target === undefined
        ? generated
        : generated.replace(/^([!-~]+) [!-~]+ /, (_, method) => `${method} ${target} `);
    const identity = [
      { name: CLIENT_FIELD, value: 'app' },
      { name: ROLE_FIELD, value: 'viewer' },
    ];
    const forwarded: Buffer[] = [];
    let replied = '';
    const sink: FilterSink = {
      forward: (data) => forwarded.push(Buffer.from(data)),
      reply: (data) => {
        replied += data.toString('latin1');
      },
    };
    const relay = relayRecorder(sink);
    let toProvider: { push: (chunk: { data: Buffer; fds: number[] }, sink: FilterSink) => void } | null =
      null;
    const refusals: string[] = [];
    new RestConnection(
      {
        identity,
        policy: policy
          ? restPolicyOf(
              'viewer',
              parseAllow(REST_POLICY, 'rest', 'fuzz').grantFor('viewer')?.narrowings ?? null,
            )
          : null,
        log: quiet,
        refused: ({ what }) => refusals.push(what),
      },
      (filters) => {
        toProvider = filters.toProvider;
        return relay;
      },
    );
    let thrown = false;
    try {
      for (const chunk of cutAt(latin1(stream), cuts)) {
        if (relay.rejected) break;
        (toProvider as unknown as { push: (c: { data: Buffer; fds: number[] }, s: FilterSink) => void }).push(
          { data: chunk, fds: [] },
          sink,
        );
      }
    } catch (error) {
      if (!(error instanceof RelayRejection)) throw error;
      thrown = true;
    }
    // What the provider gets parses as requests, each with exactly the link's identity and nothing that looks like it.
    const provider = collect(new RequestParser().push(Buffer.concat(forwarded)));
    for (const message of provider.messages) {
      const keys = message.head.headers.map((h) => fieldNameKey(h.name));
      for (const field of IDENTITY_FIELDS) {
        const values = message.head.headers
          .filter((h) => fieldNameKey(h.name) === fieldNameKey(field))
          .map((h) => h.value);
        const expected = identity.find((i) => i.name === field)?.value;
        if (values.length !== 1 || values[0] !== expected)
          disagree(`the provider got ${field} ${JSON.stringify(values)}`, { stream });
      }
      if (keys.filter((k) => k === 'connection').length > 0) {
        const options = message.head.headers
          .filter((h) => fieldNameKey(h.name) === 'connection')
          .flatMap((h) => h.value.split(','));
        if (options.some((o) => IDENTITY_FIELDS.map(fieldNameKey).includes(fieldNameKey(o.trim()))))
          disagree('an identity field survived as a Connection option', { stream });
      }
    }
    if (provider.error !== null && provider.error !== 'incomplete-message')
      disagree(`the provider's stream is not valid HTTP (${provider.error})`, { stream });
    if (policy) {
      // Every request the provider got is one the policy allows, with the target it was checked by.
      for (const { head } of provider.messages) {
        if (!policyAllows(head.method, head.target))
          disagree('a request the policy refuses reached the provider', { stream, head });
        const normalized = normalizeTarget(head.target);
        if (!normalized.ok || normalized.target !== head.target)
          disagree('the provider got a target other than the one checked', { stream, head });
      }
    } else if (refusals.length > 0) disagree('a request was refused without a policy', { stream, refusals });
    // The consumer only ever hears from the mediator: 403 and 400 for refused requests, one 400 for invalid ones.
    const answers = replied.split(/(?=HTTP\/1\.1 )/).filter((answer) => answer !== '');
    for (const answer of answers) {
      if (!/^HTTP\/1\.1 (400 Bad Request|403 Forbidden)\r\n/.test(answer))
        disagree('the consumer got a reply other than 400 or 403', { replied });
    }
    const refused = replied !== '' || relay.rejected !== null || thrown;
    const relayed = `${refused ? 'refused' : 'relayed'}:${Math.min(provider.messages.length, 3)}`;
    return policy ? `policy:${refusals.length > 0 ? 'denied' : 'none-denied'}:${relayed}` : relayed;
  },
};
