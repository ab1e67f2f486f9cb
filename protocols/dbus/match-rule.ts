// D-Bus match rules (the argument of AddMatch and RemoveMatch), read with the grammar of
// protocols/dbus/grammar/match-rule.ebnf as its header says: the lexical parse, each value unescaped and checked
// against its key's value rule, then the rules outside the grammar. Pure: the grammar's text and a rule in, the
// rule's keys and values (or why it is malformed) out. The daemon's D-Bus policy and the fuzzers share it.
import { EbnfParser, type ParseTree } from '../ebnf/parser.js';
import { MAX_NAME_LENGTH } from './names.js';

/** The grammar files a MatchRuleParser is built from, joined in this order (paths from the package's root). */
export const MATCH_RULE_GRAMMAR_FILES = [
  'protocols/dbus/grammar/match-rule.ebnf',
  'protocols/dbus/grammar/names.ebnf',
] as const;

/** The longest rule a bus takes (dbus-daemon's DBUS_MAXIMUM_MATCH_RULE_LENGTH), in bytes. */
export const MAX_MATCH_RULE_LENGTH = 1024;

/** The value rule of each key; every other key (argN, argNpath) takes `arg_value`. */
const VALUE_RULES: Readonly<Record<string, string>> = {
  type: 'type_value',
  sender: 'bus_name',
  interface: 'interface_name',
  member: 'member_name',
  path: 'object_path',
  path_namespace: 'object_path',
  destination: 'bus_name',
  eavesdrop: 'eavesdrop_value',
  arg0namespace: 'namespace_value',
};
const NAME_KEYS = new Set(['sender', 'interface', 'member', 'destination', 'arg0namespace']);

export class MatchRuleError extends Error {
  override name = 'MatchRuleError';
}

/** A well-formed rule: its keys and their values, unescaped, in the rule's order. */
export type MatchRule = ReadonlyMap<string, string>;

/** A value as it means: quoted parts without their quotes, each \' an apostrophe, unquoted characters as they are. */
function unescapedValue(value: ParseTree | undefined): string {
  if (!value) return '';
  return value.children
    .map((part) =>
      part.type === 'quoted' ? part.text.slice(1, -1) : part.type === 'escaped_quote' ? "'" : part.text,
    )
    .join('');
}

export class MatchRuleParser {
  private readonly grammar: EbnfParser;

  /** `grammarText`: the files of MATCH_RULE_GRAMMAR_FILES, joined in that order. */
  constructor(grammarText: string) {
    this.grammar = new EbnfParser(grammarText);
  }

  /** The rule's keys and values; a MatchRuleError says what is wrong with a malformed one. */
  parse(rule: string): MatchRule {
    if (Buffer.byteLength(rule) > MAX_MATCH_RULE_LENGTH) fail(`longer than ${MAX_MATCH_RULE_LENGTH} bytes`);
    const tree = this.grammar.parse('match_rule', rule);
    if (!tree) fail('not a list of key=value pairs');
    const pairs = new Map<string, string>();
    const args = new Set<string>();
    for (const pair of tree.children.filter((node) => node.type === 'pair')) {
      const key = pair.children.find((node) => node.type === 'key')?.text ?? '';
      const value = unescapedValue(pair.children.find((node) => node.type === 'value'));
      if (pairs.has(key)) fail(`key ${key} twice`);
      pairs.set(key, value);
      const arg = /^arg(\d+)/.exec(key)?.[1];
      if (arg !== undefined) {
        if (args.has(arg)) fail(`argument ${arg} matched twice`);
        args.add(arg);
      }
      const valueRule = VALUE_RULES[key] ?? 'arg_value';
      if (!this.grammar.accepts(valueRule, value)) fail(`${key}='${value}' is not a ${valueRule}`);
      if (NAME_KEYS.has(key) && value.length > MAX_NAME_LENGTH) fail(`${key} longer than ${MAX_NAME_LENGTH}`);
    }
    if (pairs.has('path') && pairs.has('path_namespace')) fail('path with path_namespace');
    return pairs;
  }

  /** Null when the rule is well-formed; else why not. */
  problem(rule: string): string | null {
    try {
      this.parse(rule);
      return null;
    } catch (error) {
      if (error instanceof MatchRuleError) return error.message;
      throw error;
    }
  }
}

function fail(problem: string): never {
  throw new MatchRuleError(problem);
}
