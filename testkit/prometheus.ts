// A strict parser of the Prometheus text exposition format (version 0.0.4), for tests: it accepts only what
// the format defines and throws on anything else, with the line number.
//
// - HELP and TYPE lines: `# HELP <name> <text>` (escapes `\\` and `\n` only), `# TYPE <name> <type>`; at most
//   one of each per metric, TYPE before the metric's first sample.
// - Samples: `<name>[{<label>="<value>",...}] <value>[ <timestamp>]`; label values escape exactly `\\`, `\"`
//   and `\n` (any other backslash sequence is an error); no duplicate label names; `__`-prefixed label names are
//   reserved; values are Go floats (NaN, +Inf, -Inf allowed); timestamps are integers.
// - A metric's lines are contiguous (its family is not interrupted by another and resumed), every series (name
//   and label set) appears once, and the text ends with a newline.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string | null;
  help: string | null;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const FLOAT = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|NaN)$/;
/** Suffixes whose samples belong to the family of the base name (histograms and summaries). */
const FAMILY_SUFFIXES = ['_bucket', '_count', '_sum'];

export class ExpositionError extends Error {
  override name = 'ExpositionError';
}

function decodeEscapes(text: string, allowed: string, line: number): string {
  let out = '';
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i] as string;
    if (char !== '\\') {
      out += char;
      continue;
    }
    const next = text[i + 1];
    if (next === undefined || !allowed.includes(next)) {
      throw new ExpositionError(`line ${line}: invalid escape \\${next ?? ''}`);
    }
    out += next === 'n' ? '\n' : next;
    i += 1;
  }
  return out;
}

function parseValue(text: string, line: number): number {
  if (!FLOAT.test(text)) throw new ExpositionError(`line ${line}: invalid value '${text}'`);
  if (text.endsWith('NaN')) {
    if (text !== 'NaN') throw new ExpositionError(`line ${line}: invalid value '${text}'`);
    return Number.NaN;
  }
  return text.endsWith('Inf') ? (text.startsWith('-') ? -Infinity : Infinity) : Number(text);
}

/** Parses `{a="x",b="y"}` starting at text[0] === '{'; returns the labels and the rest after '}'. */
function parseLabels(text: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let at = 1;
  for (;;) {
    if (text[at] === '}') return { labels, rest: text.slice(at + 1) };
    const equals = text.indexOf('=', at);
    if (equals < 0) throw new ExpositionError(`line ${line}: label without '='`);
    const name = text.slice(at, equals);
    if (!LABEL_NAME.test(name)) throw new ExpositionError(`line ${line}: invalid label name '${name}'`);
    if (name.startsWith('__')) throw new ExpositionError(`line ${line}: reserved label name '${name}'`);
    if (name in labels) throw new ExpositionError(`line ${line}: duplicate label '${name}'`);
    if (text[equals + 1] !== '"') throw new ExpositionError(`line ${line}: label value not quoted`);
    let end = equals + 2;
    while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
    if (end >= text.length) throw new ExpositionError(`line ${line}: unterminated label value`);
    labels[name] = decodeEscapes(text.slice(equals + 2, end), '\\"n', line);
    at = end + 1;
    if (text[at] === ',') at += 1;
    else if (text[at] !== '}') throw new ExpositionError(`line ${line}: expected ',' or '}' after a label`);
  }
}

function familyOf(name: string, families: Map<string, Family>): string {
  for (const suffix of FAMILY_SUFFIXES) {
    const base = name.slice(0, -suffix.length);
    if (name.endsWith(suffix) && ['histogram', 'summary'].includes(families.get(base)?.type ?? ''))
      return base;
  }
  return name;
}

export function parseExposition(text: string): Map<string, Family> {
  if (text !== '' && !text.endsWith('\n')) throw new ExpositionError('the text does not end with a newline');
  const families = new Map<string, Family>();
  const finished = new Set<string>();
  const series = new Set<string>();
  let current: string | null = null;
  const enter = (name: string, line: number): Family => {
    if (current !== name) {
      if (finished.has(name)) throw new ExpositionError(`line ${line}: metric ${name} is not contiguous`);
      if (current !== null) finished.add(current);
      current = name;
    }
    let family = families.get(name);
    if (!family) {
      family = { name, type: null, help: null, samples: [] };
      families.set(name, family);
    }
    return family;
  };
  const lines = text.split('\n').slice(0, -1);
  lines.forEach((raw, index) => {
    const line = index + 1;
    if (raw === '') return;
    if (raw.startsWith('#')) {
      const match = /^# (HELP|TYPE) ([^ ]+)(?: (.*))?$/.exec(raw);
      if (!match) return; // a plain comment
      const [, keyword, name = '', rest = ''] = match;
      if (!METRIC_NAME.test(name)) throw new ExpositionError(`line ${line}: invalid metric name '${name}'`);
      const family = enter(name, line);
      if (keyword === 'HELP') {
        if (family.help !== null) throw new ExpositionError(`line ${line}: second HELP for ${name}`);
        family.help = decodeEscapes(rest, '\\n', line);
      } else {
        if (family.type !== null) throw new ExpositionError(`line ${line}: second TYPE for ${name}`);
        if (family.samples.length > 0)
          throw new ExpositionError(`line ${line}: TYPE after samples of ${name}`);
        if (!TYPES.has(rest)) throw new ExpositionError(`line ${line}: unknown type '${rest}'`);
        family.type = rest;
      }
      return;
    }
    const nameEnd = raw.search(/[{ ]/);
    if (nameEnd <= 0) throw new ExpositionError(`line ${line}: no metric name`);
    const name = raw.slice(0, nameEnd);
    if (!METRIC_NAME.test(name)) throw new ExpositionError(`line ${line}: invalid metric name '${name}'`);
    let rest = raw.slice(nameEnd);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const fields = rest.split(' ');
    if (fields[0] !== '' || fields.length < 2 || fields.length > 3 || fields.includes('', 1)) {
      throw new ExpositionError(`line ${line}: expected ' <value>[ <timestamp>]'`);
    }
    const value = parseValue(fields[1] as string, line);
    if (fields[2] !== undefined && !/^-?\d+$/.test(fields[2])) {
      throw new ExpositionError(`line ${line}: invalid timestamp '${fields[2]}'`);
    }
    const key = `${name}${JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`;
    if (series.has(key))
      throw new ExpositionError(`line ${line}: duplicate series ${name}${JSON.stringify(labels)}`);
    series.add(key);
    enter(familyOf(name, families), line).samples.push({ name, labels, value });
  });
  return families;
}
