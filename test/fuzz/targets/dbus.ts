// Fuzz targets of the D-Bus codec: names, signatures, SASL lines both ways, messages (unmarshal, marshal, framer).
// The grammars of protocols/dbus/grammar/ generate inputs and judge them: what the codec accepts must derive from
// the grammar, and what derives from it within the specification's limits must be accepted.
import { deepStrictEqual, strictEqual } from 'node:assert';
import fc from 'fast-check';
import {
  DBusFramer,
  DBusProtocolError,
  isValidBusName,
  isValidErrorName,
  isValidInterfaceName,
  isValidMemberName,
  isValidObjectPath,
  marshal,
  parseSignature,
  SaslClientDecoder,
  type SaslCommand,
  SaslServerDecoder,
  serializeSaslCommand,
  unmarshal,
} from '../../../protocols/dbus/index.js';
import { MAX_NAME_LENGTH } from '../../../protocols/dbus/names.js';
import { MAX_SASL_LINE_LENGTH } from '../../../protocols/dbus/sasl.js';
import { MAX_SIGNATURE_LENGTH } from '../../../protocols/dbus/signature.js';
import { mutatedMessageArb } from '../../protocols/dbus/arbitraries.js';
import { Grammar, grammarInput, shortenRuns } from '../grammar.js';
import { cutAt, disagree, isRefusal, latin1, refusedOr } from '../oracle.js';
import type { FuzzTarget } from '../target.js';

const GRAMMAR = 'protocols/dbus/grammar';
let namesGrammar: Grammar | undefined;
let signatureGrammar: Grammar | undefined;
let saslGrammar: Grammar | undefined;
export const dbusNames = (): Grammar => {
  namesGrammar ??= Grammar.load([`${GRAMMAR}/names.ebnf`]);
  return namesGrammar;
};
const signatures = (): Grammar => {
  signatureGrammar ??= Grammar.load([`${GRAMMAR}/signature.ebnf`], { maxDepth: 5 });
  return signatureGrammar;
};
export const saslLines = (): Grammar => {
  saslGrammar ??= Grammar.load([`${GRAMMAR}/sasl.ebnf`]);
  return saslGrammar;
};

/** Characters the name and signature mutations insert: separators, the edges of the classes, and bytes outside. */
const NAME_SNIPPETS = [
  '.',
  '/',
  ':',
  '-',
  '_',
  '0',
  'a',
  'Z',
  ' ',
  '\0',
  '\x7f',
  '\xe9',
  '\u20ac',
  '..',
  '//',
];

const NAME_RULES = {
  object_path: isValidObjectPath,
  interface_name: isValidInterfaceName,
  error_name: isValidErrorName,
  member_name: isValidMemberName,
  bus_name: isValidBusName,
} as const;
type NameRule = keyof typeof NAME_RULES;

export const namesTarget: FuzzTarget<{ rule: NameRule; text: string }> = {
  name: 'dbus-names',
  codec: 'dbus',
  description: 'object paths and bus, interface, member, error names: the codec agrees with names.ebnf',
  sources: ['protocols/dbus/names.ts'],
  ciRuns: 15000,
  minBehaviours: 12,
  arbitrary() {
    const grammar = dbusNames();
    return fc.oneof(
      ...Object.keys(NAME_RULES).map((rule) =>
        fc.record({
          rule: fc.constant(rule as NameRule),
          text: grammarInput(grammar, rule, {
            snippets: NAME_SNIPPETS,
            boundaries: [MAX_NAME_LENGTH],
            swapRules: Object.keys(NAME_RULES),
          }),
        }),
      ),
    );
  },
  check({ rule, text }) {
    const codec = NAME_RULES[rule](text);
    const grammatical = dbusNames().accepts(rule, text);
    // The specification's one limit outside the grammar: 255 bytes for names (not for paths).
    const withinLimits = rule === 'object_path' || text.length <= MAX_NAME_LENGTH;
    if (codec !== (grammatical && withinLimits))
      disagree(`${rule}: the codec says ${codec ? 'valid' : 'invalid'}, the grammar does not`, {
        text,
        grammatical,
        withinLimits,
      });
    return `${rule}:${codec ? 'valid' : grammatical ? 'over-limit' : 'invalid'}`;
  },
};

/** How deep arrays, structs and dict entries nest in a grammatical signature (each is limited to 32). */
function nesting(signature: string): { arrays: number; structs: number; dicts: number } {
  const max = { arrays: 0, structs: 0, dicts: 0 };
  let pos = 0;
  const completeType = (arrays: number, structs: number, dicts: number): void => {
    const code = signature[pos++];
    if (code === 'a') {
      max.arrays = Math.max(max.arrays, arrays + 1);
      if (signature[pos] !== '{') {
        completeType(arrays + 1, structs, dicts);
        return;
      }
      pos++;
      max.dicts = Math.max(max.dicts, dicts + 1);
      completeType(arrays + 1, structs, dicts + 1);
      completeType(arrays + 1, structs, dicts + 1);
      pos++; // '}'
    } else if (code === '(') {
      max.structs = Math.max(max.structs, structs + 1);
      while (signature[pos] !== ')') completeType(arrays, structs + 1, dicts);
      pos++;
    }
  };
  while (pos < signature.length) completeType(0, 0, 0);
  return max;
}

export const signatureTarget: FuzzTarget<string> = {
  name: 'dbus-signature',
  codec: 'dbus',
  description: 'type signatures: parseSignature agrees with signature.ebnf and the nesting and length limits',
  sources: ['protocols/dbus/signature.ts'],
  ciRuns: 15000,
  minBehaviours: 3,
  arbitrary() {
    return grammarInput(signatures(), 'signature', {
      snippets: [
        'a',
        '(',
        ')',
        '{',
        '}',
        'v',
        'y',
        'a{',
        'a(',
        ' ',
        '\0',
        'z',
        'r',
        'e',
        'm',
        '*',
        '?',
        '@',
        '&',
        '^',
      ],
      boundaries: [MAX_SIGNATURE_LENGTH, 32, 64],
      swapRules: ['complete_type', 'basic_type', 'array', 'struct', 'dict_entry'],
    });
  },
  check(signature) {
    const parsed = refusedOr(DBusProtocolError, () => parseSignature(signature));
    const grammatical = signatures().accepts('signature', signature);
    let withinLimits = signature.length <= MAX_SIGNATURE_LENGTH;
    if (grammatical && withinLimits) {
      const depth = nesting(signature);
      withinLimits = depth.arrays <= 32 && depth.structs <= 32 && depth.dicts <= 32;
    }
    const accepted = !isRefusal(parsed);
    if (accepted !== (grammatical && withinLimits))
      disagree(`signature: the codec ${accepted ? 'accepts' : 'refuses'} it, the grammar and limits do not`, {
        signature,
        grammatical,
        withinLimits,
        codec: parsed,
      });
    return accepted ? 'accepted' : grammatical ? 'refused:limit' : 'refused:syntax';
  },
};

type SaslSide = 'client' | 'server';
const SASL_COMMAND_RULES: Record<string, string> = {
  AUTH: 'auth',
  DATA: 'data',
  BEGIN: 'begin',
  CANCEL: 'cancel',
  NEGOTIATE_UNIX_FD: 'negotiate',
  ERROR: 'error',
  REJECTED: 'rejected',
  OK: 'ok',
  AGREE_UNIX_FD: 'agree',
};

/** Lines for one side: grammar derivations and near misses, with junk and message bytes between them. */
function saslStreamArb(side: SaslSide): fc.Arbitrary<string> {
  const grammar = saslLines();
  const line = grammarInput(grammar, `${side}_line`, {
    snippets: [
      ' ',
      '\r',
      '\n',
      '\r\n',
      '\0',
      '\x7f',
      '\xe9',
      'AUTH',
      'EXTERNAL',
      '31303031',
      'BEGIN',
      'DATA',
    ],
    boundaries: [MAX_SASL_LINE_LENGTH - 2, MAX_SASL_LINE_LENGTH],
    swapRules: [`${side}_command`, 'token', 'mechanism'],
  });
  const junk = fc.string({
    unit: fc.constantFrom('\0', '\r', '\n', ' ', 'A', '\xe9', '\x7f', 'l', '\x01'),
    maxLength: 6,
  });
  const lines = fc.array(fc.oneof({ weight: 6, arbitrary: line }, { weight: 1, arbitrary: junk }), {
    maxLength: 6,
  });
  return side === 'client'
    ? lines.map((parts) => `\0${parts.join('')}`)
    : lines.map((parts) => parts.join(''));
}

function drain<C extends SaslCommand>(next: () => C | undefined): C[] {
  const commands: C[] = [];
  for (let command = next(); command; command = next()) commands.push(command);
  return commands;
}

export const saslTarget: FuzzTarget<{ side: SaslSide; stream: string; cuts: number[] }> = {
  name: 'dbus-sasl',
  codec: 'dbus',
  description:
    'SASL decoders both ways, any chunking: lossless, and every known command is sasl.ebnf grammatical',
  sources: ['protocols/dbus/sasl.ts', 'protocols/dbus/sasl-decoder.ts'],
  ciRuns: 10000,
  minBehaviours: 14,
  arbitrary() {
    return fc.oneof(
      ...(['client', 'server'] as const).map((side) =>
        fc.record({
          side: fc.constant(side),
          stream: saslStreamArb(side),
          cuts: fc.array(fc.nat(), { maxLength: 6 }),
        }),
      ),
    );
  },
  check({ side, stream, cuts }) {
    const bytes = latin1(stream);
    const decoder = side === 'client' ? new SaslClientDecoder() : new SaslServerDecoder();
    const decoded = refusedOr(DBusProtocolError, () =>
      cutAt(bytes, cuts).flatMap((chunk) => {
        decoder.push(chunk);
        return drain<SaslCommand>(() => decoder.next());
      }),
    );
    if (isRefusal(decoded)) return `${side}:refused:${decoded.refused}`;
    // Lossless: the commands re-serialize to exactly the bytes they came from.
    const lead = side === 'client' && bytes.length > 0 ? bytes.subarray(0, 1) : Buffer.alloc(0);
    const again = Buffer.concat([lead, ...decoded.map(serializeSaslCommand), decoder.remainder()]);
    strictEqual(again.toString('latin1'), stream, 'the decoded commands do not re-serialize to their input');
    for (const command of decoded) {
      const line = serializeSaslCommand(command).toString('latin1').slice(0, -2);
      const tree = saslLines().parse(`${side}_command`, shortenRuns(line));
      const rule = tree?.children[0]?.type ?? null;
      const expected = command.command === 'UNKNOWN' ? null : SASL_COMMAND_RULES[command.command];
      if (rule !== expected)
        disagree(
          `SASL ${side} line: the codec reads ${command.command}, the grammar ${rule ?? 'no command'}`,
          {
            line,
            command,
          },
        );
    }
    return `${side}:${decoded.at(-1)?.command ?? 'none'}`;
  },
};

/** A decoded message's names and signature, each judged by the grammar. */
function checkDecodedNames(message: ReturnType<typeof unmarshal>, bytes: Buffer): void {
  const names = dbusNames();
  const fields: [string | undefined, string][] = [
    [message.path, 'object_path'],
    [message.interface, 'interface_name'],
    [message.member, 'member_name'],
    [message.errorName, 'error_name'],
    [message.destination, 'bus_name'],
    [message.sender, 'bus_name'],
  ];
  for (const [value, rule] of fields) {
    if (value !== undefined && !names.accepts(rule, value))
      disagree(`unmarshal accepted a ${rule} the grammar refuses`, { value, bytes: bytes.toString('hex') });
  }
  if (!signatures().accepts('signature', message.signature))
    disagree('unmarshal accepted a body signature the grammar refuses', { signature: message.signature });
}

export const messageTarget: FuzzTarget<{ bytes: string; cuts: number[] }> = {
  name: 'dbus-message',
  codec: 'dbus',
  description:
    'mutated messages: unmarshal and the framer agree in any chunking, re-marshal round-trips, names are grammatical',
  sources: [
    'protocols/dbus/unmarshal.ts',
    'protocols/dbus/marshal.ts',
    'protocols/dbus/framer.ts',
    'protocols/dbus/reader.ts',
    'protocols/dbus/writer.ts',
    'protocols/dbus/fixed-header.ts',
    'protocols/dbus/header.ts',
  ],
  ciRuns: 8000,
  minBehaviours: 22,
  arbitrary() {
    return fc.record({
      bytes: mutatedMessageArb().map((bytes) => bytes.toString('latin1')),
      cuts: fc.array(fc.nat(), { maxLength: 8 }),
    });
  },
  check({ bytes: text, cuts }) {
    const bytes = latin1(text);
    const decoded = refusedOr(DBusProtocolError, () => unmarshal(bytes));
    const framer = new DBusFramer();
    const framed = refusedOr(DBusProtocolError, () =>
      cutAt(bytes, cuts).flatMap((chunk) => framer.push(chunk)),
    );
    if (isRefusal(decoded)) return `refused:${decoded.refused}`;
    // What unmarshal accepts, the framer frames as one message with the same fd count...
    deepStrictEqual(framed, [{ bytes, unixFds: decoded.unixFds }]);
    // ...what it decoded encodes again to something that decodes the same, and its names are grammatical.
    deepStrictEqual(unmarshal(marshal(decoded, bytes[0] === 0x6c ? 'l' : 'B')), decoded);
    checkDecodedNames(decoded, bytes);
    return `accepted:type${decoded.type}`;
  },
};
