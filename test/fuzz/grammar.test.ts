// The grammars of protocols/*/grammar/: each derives only what it accepts (the package's PEG reading agrees with
// the EBNF), reads the examples of the specifications as they do, and the D-Bus match-rule grammar, applied as its
// header says, agrees with a real dbus-daemon on generated rules, but for the leniencies that header lists.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MATCH_RULE_GRAMMAR_FILES } from '../../protocols/dbus/match-rule.js';
import { Grammar, grammarInput } from './grammar.js';
import { matchRuleProblem, matchRules } from './match-rule.js';

const GRAMMARS: [string[], string[]][] = [
  [
    ['protocols/dbus/grammar/names.ebnf'],
    ['object_path', 'interface_name', 'member_name', 'error_name', 'bus_name'],
  ],
  [['protocols/dbus/grammar/signature.ebnf'], ['signature', 'single_complete_type']],
  [['protocols/dbus/grammar/sasl.ebnf'], ['client_stream', 'client_line', 'server_line']],
  [[...MATCH_RULE_GRAMMAR_FILES], ['match_rule', 'type_value', 'namespace_value', 'arg_value']],
  [
    ['protocols/http/grammar/http-message.ebnf'],
    ['request_head', 'response_head', 'chunk_line', 'trailer_section', 'host_value', 'request_target'],
  ],
  [['protocols/graph/grammar/values.ebnf'], ['container_path', 'service_name', 'link_type']],
];

describe.each(GRAMMARS.map(([files, rules]) => [files.join(' + '), files, rules] as const))(
  '%s',
  (_, files, rules) => {
    const grammar = Grammar.load(files);
    it.each(rules)('accepts 300 of its own derivations of %s (seed 71)', (rule) => {
      const samples = fc.sample(grammar.arbitrary(rule), { seed: 71, numRuns: 300 });
      expect(samples.filter((text) => !grammar.accepts(rule, text))).toEqual([]);
    });
  },
);

describe('what the grammars read as the specifications do', () => {
  const names = Grammar.load(['protocols/dbus/grammar/names.ebnf']);
  const signature = Grammar.load(['protocols/dbus/grammar/signature.ebnf']);
  const sasl = Grammar.load(['protocols/dbus/grammar/sasl.ebnf']);
  const http = Grammar.load(['protocols/http/grammar/http-message.ebnf']);

  it.each([
    ['object_path', '/', true],
    ['object_path', '/org/freedesktop/DBus', true],
    ['object_path', '/a/', false],
    ['object_path', '//a', false],
    ['interface_name', 'org.freedesktop.DBus', true],
    ['interface_name', 'org', false],
    ['interface_name', 'org.1a', false],
    ['member_name', 'Get_All2', true],
    ['member_name', 'a.b', false],
    ['bus_name', ':1.42', true],
    ['bus_name', ':1', false],
    ['bus_name', 'org.pantavisor-x.App', true],
    ['bus_name', 'org..x', false],
  ] as const)('names: %s %j → %s', (rule, text, valid) => {
    expect(names.accepts(rule, text)).toBe(valid);
  });

  it.each([
    ['a{sv}', true],
    ['(ii)(s)', true],
    ['', true],
    ['a{vs}', false],
    ['()', false],
    ['a', false],
    ['{sv}', false],
    ['(i', false],
  ] as const)('signature %j → %s', (text, valid) => {
    expect(signature.accepts('signature', text)).toBe(valid);
  });

  it.each([
    ['client_line', 'AUTH EXTERNAL 31303031\r\n', true],
    ['client_line', 'AUTH\r\n', true],
    ['client_line', 'AUTH  EXTERNAL\r\n', false],
    ['client_line', 'NEGOTIATE_UNIX_FD\r\n', true],
    ['client_line', 'BEGIN\n', false],
    ['server_line', 'OK 1234deadbeef\r\n', true],
    ['server_line', 'REJECTED EXTERNAL DBUS_COOKIE_SHA1\r\n', true],
    ['server_line', 'ERROR \r\n', true],
    ['client_stream', '\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n', true],
  ] as const)('SASL: %s %j → %s', (rule, text, valid) => {
    expect(sasl.accepts(rule, text)).toBe(valid);
  });

  it.each([
    ['request_head', 'GET /a?b HTTP/1.1\r\nHost: example.com\r\n\r\n', true],
    ['request_head', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', true],
    ['request_head', 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n', true],
    ['request_head', 'GET http://[::1]:8/x HTTP/1.1\r\nA: b  c \r\n\r\n', true],
    ['request_head', 'GET / HTTP/1.1\r\n A: b\r\n\r\n', false],
    ['request_head', 'GET / HTTP/1.1\r\nA : b\r\n\r\n', false],
    ['request_head', 'GET /%zz HTTP/1.1\r\n\r\n', false],
    ['request_head', 'GET / HTTP/1.1\nHost: a\r\n\r\n', false],
    ['response_head', 'HTTP/1.1 204 \r\n\r\n', true],
    ['chunk_line', '1a;name="q\\"v";x=y', true],
    ['chunk_line', '0x1a', false],
    ['host_value', '[::1]:80', true],
    ['host_value', 'a b', false],
  ] as const)('HTTP: %s %j → %s', (rule, text, valid) => {
    expect(http.accepts(rule, text)).toBe(valid);
  });
});

// The D-Bus match-rule grammar against dbus-daemon itself: its AddMatch either takes a rule or refuses it with
// org.freedesktop.DBus.Error.MatchRuleInvalid.
const require = createRequire(import.meta.url);
const dbus = require('dbus-next') as {
  sessionBus(options: { busAddress: string }): {
    call(message: unknown): Promise<unknown>;
    disconnect(): void;
  };
  Message: new (fields: Record<string, unknown>) => unknown;
};

/** The leniencies of dbus-daemon 1.14 the grammar's header names: where the daemon takes what the grammar refuses. */
function daemonLeniency(rule: string): string | null {
  if (/(^|,)\s*=/.test(rule)) return 'an empty key is ignored';
  if (/(^|,)\s*arg0\d/.test(rule)) return 'a leading zero in an argument number';
  return null;
}

describe('the match-rule grammar and dbus-daemon', () => {
  let dir = '';
  let daemon: ReturnType<typeof spawn> | undefined;
  let bus: ReturnType<typeof dbus.sessionBus> | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pvx-match-rules-'));
    const socket = join(dir, 'bus');
    writeFileSync(
      join(dir, 'bus.conf'),
      `<busconfig><type>session</type><listen>unix:path=${socket}</listen><auth>EXTERNAL</auth>
       <policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
       <allow own="*"/></policy></busconfig>`,
    );
    daemon = spawn('dbus-daemon', [`--config-file=${join(dir, 'bus.conf')}`, '--nofork'], {
      stdio: 'ignore',
    });
    for (let i = 0; i < 200 && !existsSync(socket); i++)
      await new Promise((resolve) => setTimeout(resolve, 25));
    bus = dbus.sessionBus({ busAddress: `unix:path=${socket}` });
  });

  afterAll(() => {
    bus?.disconnect();
    daemon?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('agrees on 400 generated rules, valid and near-valid (seed 72), but for the listed leniencies', async () => {
    const grammar = matchRules();
    const rules = fc.sample(
      grammarInput(grammar, 'match_rule', {
        snippets: [',', '=', "'", '\\', ' ', 'type', 'arg0', 'path', '/', '.', ':', 'signal', '\t'],
        boundaries: [1024],
        swapRules: ['key', 'value', 'pair', 'type_value'],
      }),
      { seed: 72, numRuns: 400 },
    );
    const disagreements: { rule: string; grammar: string | null; daemon: string | null }[] = [];
    let accepted = 0;
    for (const rule of rules) {
      if (rule.includes('\0')) continue; // a D-Bus string holds no NUL: the codec refuses to send one
      const addMatch = (member: string) =>
        bus?.call(
          new dbus.Message({
            destination: 'org.freedesktop.DBus',
            path: '/org/freedesktop/DBus',
            interface: 'org.freedesktop.DBus',
            member,
            signature: 's',
            body: [rule],
          }),
        );
      let daemonSays: string | null = null;
      try {
        await addMatch('AddMatch');
        await addMatch('RemoveMatch');
      } catch (error) {
        daemonSays = (error as { type?: string; text?: string }).text ?? String(error);
      }
      const grammarSays = matchRuleProblem(rule);
      if (grammarSays === null) accepted++;
      if ((grammarSays === null) !== (daemonSays === null) && !(grammarSays !== null && daemonLeniency(rule)))
        disagreements.push({ rule, grammar: grammarSays, daemon: daemonSays });
    }
    expect(disagreements).toEqual([]);
    // The comparison means something only if both kinds were tried.
    expect(accepted).toBeGreaterThan(40);
    expect(accepted).toBeLessThan(rules.length - 40);
  }, 60_000);
});
