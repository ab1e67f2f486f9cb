// The smuggling corpus through the rest mediator, each case sent in one write: a refused case gets a 400 and the
// provider receives zero bytes; an accepted case reaches the provider in a form llhttp (Node's parser) reads as
// exactly the messages the mediator parsed, with the link's identity stamped and client-sent copies gone.
import { afterEach, describe, expect, it } from 'vitest';
import { badRequest, IDENTITY_FIELDS } from '../../mediators/rest-connection.js';
import {
  DEFAULT_LIMITS,
  type HttpErrorCode,
  type HttpHeader,
  type HttpLimits,
  HttpParseError,
  RequestParser,
  stripFields,
} from '../../protocols/http/index.js';
import { corpusBytes, corpusCases } from '../../testkit/http-corpus.js';
import { type RestConnection, restConnection } from '../../testkit/http-link.js';
import { llhttpParseRequests } from '../protocols/http/llhttp.js';
import { collect } from '../protocols/http/streams.js';

const IDENTITY: HttpHeader[] = [
  { name: 'X-PV-Client', value: 'app' },
  { name: 'X-PV-Role', value: 'reader' },
];

const cases = corpusCases();
let connection: RestConnection | null = null;

afterEach(async () => {
  await connection?.close();
  connection = null;
});

/** The provider's view may hold the two stamped fields more than the consumer was allowed to send. */
const STAMPED_LIMITS = {
  maxHeaders: DEFAULT_LIMITS.maxHeaders + IDENTITY.length,
  maxHeaderBytes: DEFAULT_LIMITS.maxHeaderBytes + 1024,
};

/** What the mediator makes of the input: its messages as the provider must read them, and the tunnelled tail. */
function mediated(bytes: Buffer, limits: Partial<HttpLimits> = {}) {
  const parser = new RequestParser(limits);
  const outcome = collect(parser.push(Buffer.from(bytes)));
  const switching = parser.awaitingSwitch;
  const tail = switching ? collect(parser.switchToTunnel()).opaque : '';
  const messages = outcome.messages.map((message) => ({
    method: message.head.method,
    target: message.head.target,
    headers: [...stripFields(message.head.headers, IDENTITY_FIELDS), ...IDENTITY],
    body: message.body,
    trailers: stripFields(message.trailers, IDENTITY_FIELDS),
  }));
  const connect = outcome.messages.at(-1)?.head.method === 'CONNECT';
  return { messages, switching, connect, tail, complete: outcome.messages.every((m) => m.complete) };
}

describe('the smuggling corpus through the rest mediator', () => {
  it('has refused and accepted cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
    expect(cases.filter((entry) => entry.outcome === 'accept').length).toBeGreaterThan(10);
  });

  // Tagged: the same cases run through the codec alone (test/protocols/http/corpus.test.ts).
  it.each(cases.map((entry) => [`${entry.file}: ${entry.name}`, entry] as const))(
    '%s',
    { tags: ['http-corpus'] },
    async (_, entry) => {
      const c = await restConnection();
      connection = c;
      const bytes = corpusBytes(entry.input);
      c.client.write(bytes);
      c.client.end();

      if (entry.outcome === 'reject') {
        await c.atClient.untilEnd();
        expect(c.atClient.text()).toBe(
          badRequest(new HttpParseError(entry.code as HttpErrorCode, '')).toString('latin1'),
        );
        await c.atServer.untilEnd();
        expect(c.atServer.length).toBe(0);
        return;
      }

      const expected = mediated(bytes);
      expect(expected.complete).toBe(true);
      expect(expected.messages).toHaveLength(entry.messages ?? 1);
      if (expected.switching) {
        await c.atServer.until(
          (inbox) => llhttpParseRequests([inbox.bytes()]).upgraded,
          'the switching head',
        );
        c.server.write(
          Buffer.from(
            expected.connect
              ? 'HTTP/1.1 200 Connection Established\r\n\r\n'
              : 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
          ),
        );
      }
      await c.atServer.untilEnd();
      const received = c.atServer.bytes();
      const theirs = llhttpParseRequests([received]);
      expect(theirs.error, theirs.error?.reason).toBeNull();
      expect(theirs.upgraded).toBe(expected.switching);
      expect(
        theirs.messages.map((message) => ({ ...message, body: message.body.toString('latin1') })),
      ).toEqual(expected.messages);
      expect(received.toString('latin1').endsWith(expected.tail)).toBe(true);
      // The mediator's own parser reads its output the same way (the normalized form is a fixed point).
      expect(mediated(received, STAMPED_LIMITS).messages).toEqual(expected.messages);
    },
  );
});
