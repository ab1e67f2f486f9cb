// Type signatures: validation with the specification's limits, and the parsed type tree the (un)marshaller walks.
import { DBusProtocolError } from './errors.js';

export const MAX_SIGNATURE_LENGTH = 255;
/** Per signature: arrays nest at most 32 deep, structs at most 32 deep (dict entries are counted on their own). */
export const MAX_ARRAY_DEPTH = 32;
export const MAX_STRUCT_DEPTH = 32;
/** Per value: at most 64 containers (arrays, structs, dict entries, variants) around it, across variants. */
export const MAX_TOTAL_DEPTH = 64;

export type BasicTypeCode = 'y' | 'b' | 'n' | 'q' | 'i' | 'u' | 'x' | 't' | 'd' | 'h' | 's' | 'o' | 'g';

/**
 * One complete type. `alignment` is the boundary its marshalled form starts on; `depth` is the number of
 * containers around its deepest basic value, counting this node (a variant counts 1: what it holds is only
 * known from the data).
 */
export type TypeNode =
  | { readonly code: BasicTypeCode; readonly alignment: number; readonly depth: 0 }
  | { readonly code: 'a'; readonly alignment: 4; readonly depth: number; readonly element: TypeNode }
  | {
      readonly code: '(';
      readonly alignment: 8;
      readonly depth: number;
      readonly fields: readonly TypeNode[];
    }
  | {
      readonly code: '{';
      readonly alignment: 8;
      readonly depth: number;
      readonly key: TypeNode;
      readonly value: TypeNode;
    }
  | { readonly code: 'v'; readonly alignment: 1; readonly depth: 1 };

const BASIC_ALIGNMENT: Readonly<Record<BasicTypeCode, number>> = {
  y: 1,
  b: 4,
  n: 2,
  q: 2,
  i: 4,
  u: 4,
  x: 8,
  t: 8,
  d: 8,
  h: 4,
  s: 4,
  o: 4,
  g: 1,
};

// One shared node per basic type and for `v`, so parsed trees stay small.
const BASIC_NODES = new Map<string, TypeNode>(
  Object.entries(BASIC_ALIGNMENT).map(([code, alignment]) => [
    code,
    { code: code as BasicTypeCode, alignment, depth: 0 },
  ]),
);
const VARIANT_NODE: TypeNode = { code: 'v', alignment: 1, depth: 1 };

export function isBasicType(node: TypeNode): node is Extract<TypeNode, { code: BasicTypeCode }> {
  return BASIC_NODES.get(node.code) === node;
}

function fail(signature: string, reason: string): never {
  throw new DBusProtocolError('BAD_SIGNATURE', `invalid signature "${signature}": ${reason}`);
}

/** Recursive-descent parser over one signature string; depths count the containers open around `pos`. */
class SignatureParser {
  pos = 0;
  private arrayDepth = 0;
  private structDepth = 0;
  private dictDepth = 0;

  constructor(readonly signature: string) {
    if (signature.length > MAX_SIGNATURE_LENGTH) {
      fail(signature.slice(0, 32), `longer than ${MAX_SIGNATURE_LENGTH} characters`);
    }
  }

  get done(): boolean {
    return this.pos >= this.signature.length;
  }

  completeType(): TypeNode {
    const code = this.signature[this.pos];
    if (code === undefined) fail(this.signature, 'a complete type is missing at the end');
    this.pos++;
    const basic = BASIC_NODES.get(code);
    if (basic) return basic;
    switch (code) {
      case 'v':
        return VARIANT_NODE;
      case 'a':
        return this.array();
      case '(':
        return this.struct();
      case '{':
        return fail(this.signature, `dict entry at ${this.pos - 1} is not an array element`);
      default:
        return fail(this.signature, `unexpected ${JSON.stringify(code)} at ${this.pos - 1}`);
    }
  }

  private array(): TypeNode {
    if (++this.arrayDepth > MAX_ARRAY_DEPTH)
      fail(this.signature, `arrays nest deeper than ${MAX_ARRAY_DEPTH}`);
    const element = this.signature[this.pos] === '{' ? this.dictEntry() : this.completeType();
    this.arrayDepth--;
    return { code: 'a', alignment: 4, depth: 1 + element.depth, element };
  }

  private struct(): TypeNode {
    if (++this.structDepth > MAX_STRUCT_DEPTH) {
      fail(this.signature, `structs nest deeper than ${MAX_STRUCT_DEPTH}`);
    }
    const fields: TypeNode[] = [];
    while (this.signature[this.pos] !== ')') {
      if (this.done) fail(this.signature, 'unclosed struct');
      fields.push(this.completeType());
    }
    if (fields.length === 0) fail(this.signature, `empty struct at ${this.pos - 1}`);
    this.pos++;
    this.structDepth--;
    return { code: '(', alignment: 8, depth: 1 + Math.max(...fields.map((field) => field.depth)), fields };
  }

  private dictEntry(): TypeNode {
    this.pos++; // '{'
    if (++this.dictDepth > MAX_STRUCT_DEPTH) {
      fail(this.signature, `dict entries nest deeper than ${MAX_STRUCT_DEPTH}`);
    }
    const key = this.completeType();
    if (!isBasicType(key)) fail(this.signature, 'a dict entry key must be a basic type');
    if (this.signature[this.pos] === '}') fail(this.signature, 'a dict entry needs a value type');
    const value = this.completeType();
    if (this.signature[this.pos] !== '}') fail(this.signature, 'a dict entry holds exactly two types');
    this.pos++;
    this.dictDepth--;
    return { code: '{', alignment: 8, depth: 1 + value.depth, key, value };
  }
}

// Signatures repeat on nearly every message; the cache is bounded because they come from the peer.
const MAX_CACHED = 1024;
const cache = new Map<string, readonly TypeNode[]>();

/** Parses a signature: zero or more complete types (a body, or a `g` value). Throws BAD_SIGNATURE. */
export function parseSignature(signature: string): readonly TypeNode[] {
  const cached = cache.get(signature);
  if (cached) return cached;
  const parser = new SignatureParser(signature);
  const types: TypeNode[] = [];
  while (!parser.done) types.push(parser.completeType());
  if (cache.size >= MAX_CACHED) cache.clear();
  cache.set(signature, types);
  return types;
}

/** Parses the signature of a variant: exactly one complete type. Throws BAD_SIGNATURE. */
export function parseSingleType(signature: string): TypeNode {
  const types = parseSignature(signature);
  const [only] = types;
  if (!only || types.length !== 1) fail(signature, 'a variant holds exactly one complete type');
  return only;
}

export function isValidSignature(signature: string): boolean {
  try {
    parseSignature(signature);
    return true;
  } catch (error) {
    if (error instanceof DBusProtocolError) return false;
    throw error;
  }
}

/** Checks the total-depth rule for a value of type `node` that sits inside `containers` containers. */
export function checkTotalDepth(node: TypeNode, containers: number): void {
  if (containers + node.depth > MAX_TOTAL_DEPTH) {
    throw new DBusProtocolError(
      'NESTING_TOO_DEEP',
      `values nest deeper than ${MAX_TOTAL_DEPTH} containers (arrays, structs, dict entries and variants)`,
    );
  }
}
