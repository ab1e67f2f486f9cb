// The D-Bus match-rule grammar for the fuzzers: derivations of its rules, and the daemon's own reading of a rule
// (protocols/dbus/match-rule.ts, the grammar applied as its header says) as the oracle compared with dbus-daemon.
import { MATCH_RULE_GRAMMAR_FILES, MatchRuleParser } from '../../protocols/dbus/match-rule.js';
import { Grammar } from './grammar.js';

let grammar: Grammar | undefined;
let parser: MatchRuleParser | undefined;

export const matchRules = (): Grammar => {
  grammar ??= Grammar.load(MATCH_RULE_GRAMMAR_FILES);
  return grammar;
};

/** Null when the rule is valid; else why not. */
export function matchRuleProblem(rule: string): string | null {
  parser ??= new MatchRuleParser(Grammar.text(MATCH_RULE_GRAMMAR_FILES));
  return parser.problem(rule);
}
