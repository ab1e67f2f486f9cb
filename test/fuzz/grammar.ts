// Grammars in W3C EBNF (the files under protocols/*/grammar/), read by the `ebnf` package, serve the fuzzers twice:
// as generators (fast-check arbitraries that derive valid strings from a rule, and near-valid ones by targeted
// mutation) and as oracles (does this string derive from that rule?). The oracle is the parser the daemon itself
// uses (protocols/ebnf/parser.ts); generation reads the rules as the grammar writes them.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  EbnfParser,
  type GrammarRule,
  type ParseTree,
  type RuleItem,
  ruleItem,
} from '../../protocols/ebnf/parser.js';
import { repoPath } from './paths.js';

export interface GenerateOptions {
  /** Most repetitions of a `*` or `+` item (the stretch mutation reaches past it). */
  maxRepeat: number;
  /** Deepest nesting of recursive rules. */
  maxDepth: number;
}

const DEFAULTS: GenerateOptions = { maxRepeat: 5, maxDepth: 4 };

/** Characters a class may yield: every byte, and a few beyond latin1 for classes that go there. */
const CANDIDATES = [
  ...Array.from({ length: 256 }, (_, code) => String.fromCharCode(code)),
  '\u0100',
  '\u03b1',
  '\u20ac',
  '\ufffd',
];

export class Grammar {
  readonly rules: ReadonlyMap<string, GrammarRule>;
  private readonly parser: EbnfParser;
  private readonly arbitraries = new Map<string, fc.Arbitrary<string>>();
  private readonly classes = new Map<string, string[]>();
  private readonly options: GenerateOptions;

  /** A grammar from the text of its files (paths from the repository's root), read together. */
  static load(files: readonly string[], options: Partial<GenerateOptions> = {}): Grammar {
    return new Grammar(Grammar.text(files), options);
  }

  /** The text of grammar files (paths from the repository's root), joined as they are read together. */
  static text(files: readonly string[]): string {
    return files.map((file) => readFileSync(repoPath(file), 'utf8')).join('\n');
  }

  constructor(text: string, options: Partial<GenerateOptions> = {}) {
    this.options = { ...DEFAULTS, ...options };
    this.parser = new EbnfParser(text);
    this.rules = this.parser.rules;
  }

  /** Whether `text`, all of it, derives from `rule`. */
  accepts(rule: string, text: string): boolean {
    return this.parser.accepts(rule, text);
  }

  /** The parse tree of `text` as `rule`, or null unless all of it derives from the rule. */
  parse(rule: string, text: string): ParseTree | null {
    return this.parser.parse(rule, text);
  }

  /** Strings derived from `rule` (shrinking towards shorter derivations). */
  arbitrary(rule: string): fc.Arbitrary<string> {
    const built = this.arbitraries.get(rule);
    if (built) return built;
    if (!this.rules.has(rule)) throw new Error(`grammar: no rule '${rule}'`);
    // One letrec over every rule, so recursive rules tie to themselves with a depth bound.
    const all = fc.letrec((tie) => {
      const table: Record<string, fc.Arbitrary<string>> = {};
      for (const [name, definition] of this.rules) table[name] = this.ruleArbitrary(definition, tie);
      return table;
    });
    for (const [name, arbitrary] of Object.entries(all)) this.arbitraries.set(name, arbitrary);
    return this.arbitraries.get(rule) as fc.Arbitrary<string>;
  }

  /** The characters a character class (a RegExp of the rules) matches, among the candidates. */
  charactersOf(regexp: RegExp): string[] {
    const key = regexp.source;
    let chars = this.classes.get(key);
    if (!chars) {
      const whole = new RegExp(`^(?:${regexp.source})$`);
      chars = CANDIDATES.filter((char) => whole.test(char));
      if (chars.length === 0) throw new Error(`grammar: class ${regexp} matches no candidate character`);
      this.classes.set(key, chars);
    }
    return chars;
  }

  /** Every literal string of the grammar: the delimiters and keywords that mutations insert. */
  literals(): string[] {
    const found = new Set<string>();
    for (const rule of this.rules.values())
      for (const sequence of rule.bnf)
        for (const primary of sequence) {
          const { literal } = ruleItem(primary);
          if (literal) found.add(literal);
        }
    return [...found];
  }

  private ruleArbitrary(
    rule: GrammarRule,
    tie: (name: string) => fc.Arbitrary<unknown>,
  ): fc.Arbitrary<string> {
    const sequences = rule.bnf.map((sequence) => {
      const parts = sequence.map((primary) => this.itemArbitrary(ruleItem(primary), tie));
      return parts.length === 1
        ? (parts[0] as fc.Arbitrary<string>)
        : fc.tuple(...parts).map((texts) => texts.join(''));
    });
    if (sequences.length === 1) return sequences[0] as fc.Arbitrary<string>;
    // At the depth bound fast-check takes the first alternative: grammars put a non-recursive one first.
    return fc.oneof({ maxDepth: this.options.maxDepth, depthIdentifier: 'grammar' }, ...sequences);
  }

  private itemArbitrary(entry: RuleItem, tie: (name: string) => fc.Arbitrary<unknown>): fc.Arbitrary<string> {
    let one: fc.Arbitrary<string>;
    if (entry.primary instanceof RegExp) one = fc.constantFrom(...this.charactersOf(entry.primary));
    else if (entry.literal !== null) one = fc.constant(entry.literal);
    else if (entry.name === 'EOF') one = fc.constant('');
    else one = tie(entry.name) as fc.Arbitrary<string>;
    const { maxRepeat, maxDepth } = this.options;
    const many = { maxLength: maxRepeat, depthIdentifier: 'grammar', maxDepth } as const;
    switch (entry.repeat) {
      case '?':
        return fc.option(one, { nil: '', depthIdentifier: 'grammar', maxDepth });
      case '*':
        return fc.array(one, many).map((texts) => texts.join(''));
      case '+':
        return fc.array(one, { ...many, minLength: 1 }).map((texts) => texts.join(''));
      default:
        return one;
    }
  }
}

/**
 * `text` with every run of one character longer than 8 cut to 8. The package's parser slows down quadratically on
 * the long repetitions that limit mutations make; no rule of the project's grammars counts a repeated character
 * past 3 (HTTP's status code), so a grammar's verdict on the shortened text is its verdict on the text.
 */
export function shortenRuns(text: string): string {
  return text.length <= 1024 ? text : text.replace(/(.)\1{8,}/gs, '$1$1$1$1$1$1$1$1');
}

/** Every node of a parse tree, parents before children. */
export function nodesOf(tree: ParseTree): ParseTree[] {
  const nodes: ParseTree[] = [];
  const visit = (node: ParseTree) => {
    nodes.push(node);
    for (const child of node.children) visit(child);
  };
  visit(tree);
  return nodes;
}

// Near-valid inputs: a valid derivation with one to three targeted mutations.

export type Mutation =
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'replace'; at: number; text: string }
  | { kind: 'duplicate'; at: number; length: number }
  /** Repeats the character at `at` until the whole input is `length` long (boundary lengths). */
  | { kind: 'stretch'; at: number; length: number }
  /** Replaces the text of a node of the parse tree by a derivation of another rule (a rule swap). */
  | { kind: 'swap'; node: number; text: string };

export interface MutationOptions {
  /** Characters and strings to insert: forbidden ones (CR, LF, NUL, …) and the grammar's own delimiters. */
  snippets: readonly string[];
  /** Lengths where limits sit; stretching aims at each of them ±1. */
  boundaries?: readonly number[];
  /** Rules whose derivations swap into parse-tree nodes. */
  swapRules?: readonly string[];
}

export function mutationArbitrary(grammar: Grammar, options: MutationOptions): fc.Arbitrary<Mutation> {
  const at = fc.nat({ max: 1 << 16 });
  const snippet = fc.constantFrom(...options.snippets);
  const kinds: fc.Arbitrary<Mutation>[] = [
    fc.record({ kind: fc.constant('insert' as const), at, text: snippet }),
    fc.record({ kind: fc.constant('delete' as const), at, length: fc.integer({ min: 1, max: 4 }) }),
    fc.record({ kind: fc.constant('replace' as const), at, text: snippet }),
    fc.record({ kind: fc.constant('duplicate' as const), at, length: fc.integer({ min: 1, max: 8 }) }),
  ];
  const lengths = (options.boundaries ?? []).flatMap((limit) => [limit - 1, limit, limit + 1]);
  if (lengths.length > 0)
    kinds.push(fc.record({ kind: fc.constant('stretch' as const), at, length: fc.constantFrom(...lengths) }));
  if (options.swapRules && options.swapRules.length > 0) {
    const text = fc.oneof(...options.swapRules.map((rule) => grammar.arbitrary(rule)));
    kinds.push(fc.record({ kind: fc.constant('swap' as const), node: at, text }));
  }
  return fc.oneof(...kinds);
}

const MAX_SWAP_LENGTH = 1024;

/** Applies mutations in order; swaps need the grammar and the rule the text was derived from. */
export function applyMutations(
  text: string,
  mutations: readonly Mutation[],
  grammar: Grammar,
  rule: string,
): string {
  let out = text;
  for (const mutation of mutations) {
    const at = out.length === 0 ? 0 : mutation.kind === 'swap' ? 0 : mutation.at % (out.length + 1);
    switch (mutation.kind) {
      case 'insert':
        out = out.slice(0, at) + mutation.text + out.slice(at);
        break;
      case 'delete':
        out = out.slice(0, at) + out.slice(at + mutation.length);
        break;
      case 'replace':
        out = out.slice(0, at) + mutation.text + out.slice(at + 1);
        break;
      case 'duplicate':
        out = out.slice(0, at) + out.slice(at, at + mutation.length) + out.slice(at);
        break;
      case 'stretch': {
        const missing = mutation.length - out.length;
        if (missing > 0 && out.length > 0) {
          const from = Math.min(at, out.length - 1);
          out = out.slice(0, from) + (out[from] as string).repeat(missing) + out.slice(from);
        }
        break;
      }
      case 'swap': {
        // The package's parser slows down quadratically on long repetitions: no swaps into stretched inputs.
        const tree = out.length <= MAX_SWAP_LENGTH ? grammar.parse(rule, out) : null;
        if (!tree) break;
        const nodes = nodesOf(tree);
        const node = nodes[mutation.node % nodes.length] as ParseTree;
        out = out.slice(0, node.start) + mutation.text + out.slice(node.end);
        break;
      }
    }
  }
  return out;
}

/** Valid derivations of `rule`, and as often near-valid ones (one to three mutations). */
export function grammarInput(grammar: Grammar, rule: string, options: MutationOptions): fc.Arbitrary<string> {
  const valid = grammar.arbitrary(rule);
  const mutated = fc
    .tuple(valid, fc.array(mutationArbitrary(grammar, options), { minLength: 1, maxLength: 3 }))
    .map(([text, mutations]) => applyMutations(text, mutations, grammar, rule));
  return fc.oneof(valid, mutated);
}
