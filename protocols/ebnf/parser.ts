// A grammar in W3C EBNF (the files under protocols/*/grammar/) as a parser: whether all of a string derives from a
// rule, and its parse tree. Pure: grammar text in, trees out. Built on the `ebnf` package, which parses like a PEG:
// alternatives are tried in order and the first that matches wins, repetitions are greedy and never give back (the
// grammar files are written so that this reading equals the EBNF one: protocols/dbus/grammar/README.md).
//
// The package's parser is slow on long inputs: it tries each character class and literal with RegExp.exec on the
// rest of the input, which searches all of it when the match fails at its start, and it makes one token per
// character of a repeated class. A 1 KiB D-Bus match rule took up to 9 ms. So the parser built here is the
// package's, with its rules rewritten without changing what they derive nor the tree they give: every class and
// plain literal is anchored at the start of the input, and a repeated class that the tree does not show (the
// package's own `%` helper rules, which getAST strips) matches a whole run at once.
import ebnf, { type IRule, type IToken } from 'ebnf';

const { Grammars } = ebnf;

export type GrammarRule = IRule;
export type ParseTree = IToken;
type Primary = IRule['bnf'][number][number];

/** One element of a rule's sequence as the package writes it: `name`, `"literal"` or a class, then `?`, `*` or `+`. */
export interface RuleItem {
  readonly primary: Primary;
  /** The rule or literal it names, without its repetition mark ('' for a class). */
  readonly name: string;
  /** The literal's text, null when the item is not a literal. */
  readonly literal: string | null;
  readonly repeat: '' | '?' | '*' | '+';
}

export function ruleItem(primary: Primary): RuleItem {
  if (primary instanceof RegExp) return { primary, name: '', literal: null, repeat: '' };
  if (/^[!&@]/.test(primary)) throw new Error(`grammar: ${primary}: lookahead and pins are not supported`);
  const last = primary.at(-1) as string;
  const decorated = '?*+'.includes(last) && !/^(["']).*\1$/s.test(primary);
  const repeat = (decorated ? last : '') as RuleItem['repeat'];
  const name = decorated ? primary.slice(0, -1) : primary;
  let literal: string | null = null;
  // As the package reads literals: "…" as a JSON string, '…' as it is.
  if (name.startsWith('"')) literal = JSON.parse(name) as string;
  else if (name.startsWith("'")) literal = name.slice(1, -1);
  return { primary, name, literal, repeat };
}

const REGEXP_SPECIAL = /[-[\]/{}()*+?.\\^$|]/g;

export class EbnfParser {
  /** The rules as the grammar writes them (the parser runs on a rewritten copy). */
  readonly rules: ReadonlyMap<string, GrammarRule>;
  private readonly parser: InstanceType<typeof Grammars.W3C.Parser>;
  private readonly nullable = new Map<string, boolean>();

  constructor(text: string) {
    this.parser = new Grammars.W3C.Parser(text, { keepUpperRules: true });
    const rules = this.parser.grammarRules;
    this.rules = new Map(
      rules.map((rule) => [rule.name, { ...rule, bnf: rule.bnf.map((sequence) => [...sequence]) }]),
    );
    const runs = runRules(rules);
    for (const rule of rules) {
      rule.bnf = rule.bnf.map((sequence) =>
        sequence.map((primary) => anchored(primary, runs.has(rule.name) ? '+' : '')),
      );
    }
  }

  /** Whether `text`, all of it, derives from `rule`. */
  accepts(rule: string, text: string): boolean {
    return this.parse(rule, text) !== null;
  }

  /** The parse tree of `text` as `rule`, or null unless all of it derives from the rule. */
  parse(rule: string, text: string): ParseTree | null {
    if (!this.rules.has(rule)) throw new Error(`grammar: no rule '${rule}'`);
    if (text === '') return this.isNullable(rule) ? emptyTree(rule) : null;
    const tree = this.parser.getAST(text, rule);
    if (tree?.rest !== '' || tree.errors.length > 0 || tree.text.length !== text.length) return null;
    return tree;
  }

  /** Whether a rule derives the empty string (the package's parser returns nothing for empty input). */
  isNullable(name: string, visiting = new Set<string>()): boolean {
    const known = this.nullable.get(name);
    if (known !== undefined) return known;
    const rule = this.rules.get(name);
    if (!rule || visiting.has(name)) return false;
    visiting.add(name);
    const result = rule.bnf.some((sequence) =>
      sequence.every((primary) => {
        const item = ruleItem(primary);
        if (item.repeat === '?' || item.repeat === '*') return true;
        if (item.primary instanceof RegExp) return false;
        if (item.literal !== null) return item.literal === '';
        return this.isNullable(item.name, visiting);
      }),
    );
    visiting.delete(name);
    this.nullable.set(name, result);
    return result;
  }
}

/**
 * The package's helper rules (`%…`, stripped from trees) that are a single class and are only ever used repeated
 * (`*` or `+`): one greedy match of the class repeated is then the same as the package's loop over one character.
 */
function runRules(rules: readonly GrammarRule[]): Set<string> {
  const uses = new Map<string, string[]>();
  for (const rule of rules)
    for (const sequence of rule.bnf)
      for (const primary of sequence) {
        if (primary instanceof RegExp) continue;
        const item = ruleItem(primary);
        if (item.literal === null) uses.set(item.name, [...(uses.get(item.name) ?? []), item.repeat]);
      }
  return new Set(
    rules
      .filter(
        ({ name, bnf }) =>
          name.startsWith('%') &&
          bnf.length === 1 &&
          bnf[0]?.length === 1 &&
          bnf[0][0] instanceof RegExp &&
          (uses.get(name) ?? []).length > 0 &&
          (uses.get(name) ?? []).every((repeat) => repeat === '*' || repeat === '+'),
      )
      .map(({ name }) => name),
  );
}

/** A class, or a literal that is not repeated, as a RegExp that can only match at the start of the input. */
function anchored(primary: Primary, repeat: '' | '+'): Primary {
  if (primary instanceof RegExp) return new RegExp(`^(?:${primary.source})${repeat}`, primary.flags);
  const item = ruleItem(primary);
  if (item.literal === null || item.literal === '' || item.repeat !== '') return primary;
  return new RegExp(`^${item.literal.replace(REGEXP_SPECIAL, '\\$&')}`);
}

function emptyTree(rule: string): ParseTree {
  return {
    type: rule,
    text: '',
    start: 0,
    end: 0,
    children: [],
    errors: [],
    rest: '',
  } as unknown as ParseTree;
}
