// The D-Bus match-rule grammar applied as protocols/dbus/grammar/match-rule.ebnf describes: the lexical parse,
// each value unescaped and checked against its key's value rule, then the rules outside the grammar. A reference
// for whoever applies the grammar at run time, and the oracle the grammar is compared with dbus-daemon by.
import type { IToken } from 'ebnf';
import { Grammar } from './grammar.js';

let grammar: Grammar | undefined;
export const matchRules = (): Grammar => {
  grammar ??= Grammar.load(['protocols/dbus/grammar/match-rule.ebnf', 'protocols/dbus/grammar/names.ebnf']);
  return grammar;
};

const MAX_RULE_LENGTH = 1024;
const MAX_NAME_LENGTH = 255;
const VALUE_RULES: Record<string, string> = {
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

/** A value as it means: quoted parts without their quotes, each \' an apostrophe, unquoted characters as they are. */
function unescapedValue(value: IToken | undefined): string {
  if (!value) return '';
  return value.children
    .map((part) =>
      part.type === 'quoted' ? part.text.slice(1, -1) : part.type === 'escaped_quote' ? "'" : part.text,
    )
    .join('');
}

/** Null when the rule is valid; else why not. */
export function matchRuleProblem(rule: string): string | null {
  if (rule.length > MAX_RULE_LENGTH) return `longer than ${MAX_RULE_LENGTH} bytes`;
  const tree = matchRules().parse('match_rule', rule);
  if (!tree) return 'not a list of key=value pairs';
  const seen = new Set<string>();
  const args = new Set<string>();
  for (const pair of tree.children.filter((node) => node.type === 'pair')) {
    const key = pair.children.find((node) => node.type === 'key')?.text ?? '';
    const value = unescapedValue(pair.children.find((node) => node.type === 'value'));
    if (seen.has(key)) return `key ${key} twice`;
    seen.add(key);
    const arg = /^arg(\d+)/.exec(key)?.[1];
    if (arg !== undefined) {
      if (args.has(arg)) return `argument ${arg} matched twice`;
      args.add(arg);
    }
    const valueRule = VALUE_RULES[key] ?? 'arg_value';
    if (!matchRules().accepts(valueRule, value)) return `${key}='${value}' is not a ${valueRule}`;
    if (NAME_KEYS.has(key) && value.length > MAX_NAME_LENGTH) return `${key} longer than ${MAX_NAME_LENGTH}`;
  }
  if (seen.has('path') && seen.has('path_namespace')) return 'path with path_namespace';
  return null;
}
