// Fuzz target for the D-Bus codec: `npm run fuzz -- dbus [seconds]`. Throws on a finding, with fast-check's
// shrunk counterexample and the seed to replay it.
//
// Inputs: mutated valid messages (unmarshal and framer, cross-checked), SASL byte streams in random chunks
// (both decoders, checked to re-serialize to their input), and random signature strings.
import { deepStrictEqual, strictEqual } from 'node:assert';
import fc from 'fast-check';
import {
  DBusFramer,
  DBusProtocolError,
  isValidSignature,
  marshal,
  parseSignature,
  SaslClientDecoder,
  type SaslCommand,
  SaslServerDecoder,
  serializeSaslCommand,
  unmarshal,
} from '../../protocols/dbus/index.js';
import { mutatedMessageArb, splitAt } from '../protocols/dbus/arbitraries.js';

/** Runs `step`; a DBusProtocolError is an expected rejection (undefined), anything else is a finding. */
function rejectedOr<T>(step: () => T): T | undefined {
  try {
    return step();
  } catch (error) {
    if (error instanceof DBusProtocolError) return undefined;
    throw error;
  }
}

function checkMessage(bytes: Buffer, offsets: number[]): void {
  const decoded = rejectedOr(() => unmarshal(bytes));
  const framer = new DBusFramer();
  const framed = rejectedOr(() => splitAt(bytes, offsets).flatMap((chunk) => framer.push(chunk)));
  if (decoded === undefined) return;
  // What unmarshal accepts, the framer frames as one message with the same fd count...
  deepStrictEqual(framed, [{ bytes, unixFds: decoded.unixFds }]);
  // ...and what it decoded encodes again, to something that decodes the same.
  const endianness = bytes[0] === 0x6c ? 'l' : 'B';
  deepStrictEqual(unmarshal(marshal(decoded, endianness)), decoded);
}

function drain<C extends SaslCommand>(next: () => C | undefined): C[] {
  const commands: C[] = [];
  for (let command = next(); command; command = next()) commands.push(command);
  return commands;
}

/** Decodes a stream both ways; when accepted, the commands re-serialize to exactly the bytes consumed. */
function checkSasl(stream: Buffer, offsets: number[]): void {
  const client = new SaslClientDecoder();
  const server = new SaslServerDecoder();
  const chunks = splitAt(stream, offsets);
  const clientCommands = rejectedOr(() =>
    chunks.flatMap((chunk) => {
      client.push(chunk);
      return drain(() => client.next());
    }),
  );
  const serverCommands = rejectedOr(() =>
    chunks.flatMap((chunk) => {
      server.push(chunk);
      return drain(() => server.next());
    }),
  );
  if (clientCommands !== undefined) {
    // The leading NUL was consumed as soon as there was a byte (and had to be NUL, or it would have thrown).
    const nul = stream.subarray(0, 1);
    const again = Buffer.concat([nul, ...clientCommands.map(serializeSaslCommand), client.remainder()]);
    strictEqual(again.toString('hex'), stream.toString('hex'));
  }
  if (serverCommands !== undefined) {
    const again = Buffer.concat([...serverCommands.map(serializeSaslCommand), server.remainder()]);
    strictEqual(again.toString('hex'), stream.toString('hex'));
  }
}

function checkSignature(signature: string): void {
  const parsed = rejectedOr(() => parseSignature(signature));
  strictEqual(isValidSignature(signature), parsed !== undefined);
}

const saslPiece = fc.oneof(
  fc.constantFrom(
    '\0',
    'AUTH',
    'AUTH EXTERNAL 31303031',
    'DATA',
    'BEGIN',
    'OK 0123abcd',
    'REJECTED EXTERNAL',
    'NEGOTIATE_UNIX_FD',
    'AGREE_UNIX_FD',
    'ERROR x y',
    '\r\n',
    '\r\n',
    ' ',
  ),
  fc.string({ unit: fc.constantFrom('\0', '\r', '\n', ' ', 'A', '\xe9', '\x7f'), maxLength: 4 }),
);
const saslStream = fc
  .array(saslPiece, { maxLength: 12 })
  .map((pieces) => Buffer.from(pieces.join(''), 'latin1'));
const signatureText = fc.string({
  unit: fc.constantFrom(...'ybnqiuxtdhsogav(){}rz'.split('')),
  maxLength: 40,
});
const offsets = fc.array(fc.nat(), { maxLength: 8 });

export function fuzz(budgetMs: number, log: (line: string) => void, seed = Date.now() | 0): number {
  let tried = 0;
  log(`dbus fuzz: seed ${seed}, ${budgetMs} ms`);
  fc.assert(
    fc.property(
      fc.oneof(
        { weight: 6, arbitrary: fc.tuple(fc.constant('message' as const), mutatedMessageArb(), offsets) },
        { weight: 3, arbitrary: fc.tuple(fc.constant('sasl' as const), saslStream, offsets) },
        { weight: 1, arbitrary: fc.tuple(fc.constant('signature' as const), signatureText, offsets) },
      ),
      ([kind, input, chunking]) => {
        tried++;
        if (kind === 'message') checkMessage(input, chunking);
        else if (kind === 'sasl') checkSasl(input, chunking);
        else checkSignature(input);
      },
    ),
    { seed, numRuns: Number.MAX_SAFE_INTEGER, plugins: [fc.interruptAfterTimeLimit(budgetMs)] },
  );
  return tried;
}
