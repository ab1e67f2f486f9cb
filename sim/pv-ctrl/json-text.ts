// JSON text for people: parse errors located by line and column (JSON.parse's own messages differ between Node
// versions and give at most a byte position), and key names checked against the known ones with a suggestion for
// a likely misspelling. Pure: no I/O.

export interface JsonTextError {
  /** 1-based. */
  line: number;
  /** 1-based, in characters. */
  column: number;
  message: string;
}

export type JsonParse = { ok: true; value: unknown } | { ok: false; error: JsonTextError };

export function parseJsonText(text: string): JsonParse {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, error: locateJsonError(text) };
  }
}

export function formatJsonError(error: JsonTextError): string {
  return `not valid JSON: line ${error.line}, column ${error.column}: ${error.message}`;
}

/** Where the first error of `text` is (text that JSON.parse refused). */
export function locateJsonError(text: string): JsonTextError {
  const scanner = new Scanner(text);
  let failure: { offset: number; message: string };
  try {
    scanner.document();
    failure = { offset: 0, message: 'not JSON' };
  } catch (error) {
    failure = error as { offset: number; message: string };
  }
  const before = text.slice(0, failure.offset).split('\n');
  return {
    line: before.length,
    column: (before[before.length - 1] ?? '').length + 1,
    message: failure.message,
  };
}

/** A JSON grammar walker (RFC 8259) that only finds where text stops being JSON. */
class Scanner {
  private at = 0;
  constructor(private readonly text: string) {}

  document(): void {
    this.space();
    this.value();
    this.space();
    if (this.at < this.text.length) this.fail(`unexpected ${this.describe()} after the document`);
  }

  private value(): void {
    const char = this.text[this.at];
    if (char === '{') this.object();
    else if (char === '[') this.array();
    else if (char === '"') this.string();
    else if (char === '-' || (char !== undefined && char >= '0' && char <= '9')) this.number();
    else this.literal();
  }

  private literal(): void {
    for (const word of ['true', 'false', 'null']) {
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length;
        return;
      }
    }
    this.fail(`expected a value, found ${this.describe()}`);
  }

  private object(): void {
    this.sequence('}', 'an object', () => {
      if (this.text[this.at] !== '"') this.fail(`expected a key in double quotes, found ${this.describe()}`);
      this.string();
      this.space();
      this.expect(':', 'after a key');
      this.space();
      this.value();
    });
  }

  private array(): void {
    this.sequence(']', 'an array', () => this.value());
  }

  /** `item`s separated by commas up to `close` (the opening bracket is at the cursor). */
  private sequence(close: string, what: string, item: () => void): void {
    this.at += 1;
    this.space();
    if (this.text[this.at] === close) {
      this.at += 1;
      return;
    }
    for (;;) {
      item();
      this.space();
      if (this.text[this.at] === close) {
        this.at += 1;
        return;
      }
      this.expect(',', `or '${close}' after a value in ${what}`);
      this.space();
      if (this.text[this.at] === close) this.fail(`a trailing ',' before '${close}'`);
    }
  }

  private string(): void {
    this.at += 1;
    for (;;) {
      const char = this.text[this.at];
      if (char === undefined) this.fail('unterminated string');
      if (char === '"') {
        this.at += 1;
        return;
      }
      if (char === '\n') this.fail('unterminated string (a line break inside quotes)');
      if ((char as string) < ' ') this.fail('a control character inside a string');
      if (char === '\\') {
        const escaped = this.text[this.at + 1];
        if (escaped === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(this.text.slice(this.at + 2, this.at + 6))) {
            this.fail('\\u must be followed by four hex digits');
          }
          this.at += 6;
          continue;
        }
        if (escaped === undefined || !'"\\/bfnrt'.includes(escaped)) this.fail('an invalid escape');
        this.at += 2;
        continue;
      }
      this.at += 1;
    }
  }

  private number(): void {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.text.slice(this.at));
    if (!match || match[0] === '-') this.fail('an invalid number');
    this.at += (match as RegExpExecArray)[0].length;
  }

  private expect(char: string, where: string): void {
    if (this.text[this.at] !== char) this.fail(`expected '${char}' ${where}, found ${this.describe()}`);
    this.at += 1;
  }

  private space(): void {
    while (' \t\n\r'.includes(this.text[this.at] ?? 'x')) this.at += 1;
  }

  private describe(): string {
    const char = this.text[this.at];
    return char === undefined ? 'the end of the file' : `'${char}'`;
  }

  private fail(message: string): never {
    throw { offset: this.at, message };
  }
}

/** The known key `key` most likely misspells, or null: same letters in another case, or at most two edits away. */
export function suggestKey(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Number.POSITIVE_INFINITY;
  const allowed = key.length <= 4 ? 1 : 2;
  for (const candidate of known) {
    const distance =
      candidate.toLowerCase() === key.toLowerCase()
        ? 0
        : editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance <= allowed && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours cost 1. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => (rows[i] as number[])[j] as number;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        value = Math.min(value, at(i - 2, j - 2) + 1);
      }
      (rows[i] as number[])[j] = value;
    }
  }
  return at(a.length, b.length);
}
