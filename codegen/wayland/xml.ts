// A small XML parser for the regular format of Wayland protocol files: elements, attributes, text, comments,
// the XML declaration, CDATA and the predefined and numeric entities. No DTDs, no namespaces. Pure: text in,
// tree out; anything it cannot read throws an XmlError with the line it happened on.

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  /** The element's own text (not its descendants'), entities decoded, concatenated. */
  text: string;
}

export class XmlError extends Error {
  override name = 'XmlError';
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
  }
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const NAME = /[A-Za-z_:][-A-Za-z0-9_:.]*/y;
const SPACE = /\s*/y;

class Cursor {
  position = 0;
  constructor(readonly source: string) {}

  get done(): boolean {
    return this.position >= this.source.length;
  }

  line(at = this.position): number {
    let line = 1;
    for (let i = 0; i < at; i++) if (this.source.charCodeAt(i) === 10) line++;
    return line;
  }

  fail(message: string, at = this.position): never {
    throw new XmlError(message, this.line(at));
  }

  startsWith(text: string): boolean {
    return this.source.startsWith(text, this.position);
  }

  expect(text: string): void {
    if (!this.startsWith(text)) this.fail(`expected '${text}'`);
    this.position += text.length;
  }

  /** Moves past `end` and returns what came before it. */
  until(end: string, what: string): string {
    const index = this.source.indexOf(end, this.position);
    if (index < 0) this.fail(`unterminated ${what}`);
    const text = this.source.slice(this.position, index);
    this.position = index + end.length;
    return text;
  }

  skipSpace(): void {
    SPACE.lastIndex = this.position;
    SPACE.exec(this.source);
    this.position = SPACE.lastIndex;
  }

  name(): string {
    NAME.lastIndex = this.position;
    const match = NAME.exec(this.source);
    if (!match) this.fail('expected a name');
    this.position = NAME.lastIndex;
    return match[0];
  }
}

function decodeEntities(text: string, cursor: Cursor, at: number): string {
  return text.replace(/&([^;&\s]*);?/g, (whole, entity: string) => {
    if (!whole.endsWith(';')) cursor.fail(`unterminated entity '${whole}'`, at);
    const code = entity.startsWith('#x')
      ? Number.parseInt(entity.slice(2), 16)
      : entity.startsWith('#')
        ? Number.parseInt(entity.slice(1), 10)
        : undefined;
    if (code !== undefined) {
      if (!Number.isInteger(code) || code < 0 || code > 0x10ffff)
        cursor.fail(`bad character reference '${whole}'`, at);
      return String.fromCodePoint(code);
    }
    const named = ENTITIES[entity];
    if (named === undefined) cursor.fail(`unknown entity '${whole}'`, at);
    return named;
  });
}

/** Skips comments, processing instructions (including the XML declaration) and whitespace between elements. */
function skipMisc(cursor: Cursor): void {
  for (;;) {
    cursor.skipSpace();
    if (cursor.startsWith('<!--')) cursor.until('-->', 'comment');
    else if (cursor.startsWith('<?')) cursor.until('?>', 'processing instruction');
    else return;
  }
}

function parseAttributes(cursor: Cursor): Record<string, string> {
  const attributes: Record<string, string> = {};
  for (;;) {
    cursor.skipSpace();
    if (cursor.startsWith('/>') || cursor.startsWith('>')) return attributes;
    const at = cursor.position;
    const name = cursor.name();
    cursor.skipSpace();
    cursor.expect('=');
    cursor.skipSpace();
    const quote = cursor.source[cursor.position];
    if (quote !== '"' && quote !== "'") cursor.fail(`attribute '${name}' needs a quoted value`);
    cursor.position += 1;
    const raw = cursor.until(quote, `value of attribute '${name}'`);
    if (raw.includes('<')) cursor.fail(`'<' in the value of attribute '${name}'`, at);
    if (Object.hasOwn(attributes, name)) cursor.fail(`duplicate attribute '${name}'`, at);
    attributes[name] = decodeEntities(raw, cursor, at);
  }
}

function parseElement(cursor: Cursor): XmlElement {
  cursor.expect('<');
  const name = cursor.name();
  const element: XmlElement = { name, attributes: parseAttributes(cursor), children: [], text: '' };
  if (cursor.startsWith('/>')) {
    cursor.position += 2;
    return element;
  }
  cursor.expect('>');
  for (;;) {
    if (cursor.done) cursor.fail(`element '${name}' is not closed`);
    const at = cursor.position;
    if (cursor.startsWith('</')) {
      cursor.position += 2;
      const closing = cursor.name();
      if (closing !== name) cursor.fail(`'</${closing}>' closes '<${name}>'`, at);
      cursor.skipSpace();
      cursor.expect('>');
      return element;
    }
    if (cursor.startsWith('<!--')) cursor.until('-->', 'comment');
    else if (cursor.startsWith('<![CDATA[')) {
      cursor.position += 9;
      element.text += cursor.until(']]>', 'CDATA section');
    } else if (cursor.startsWith('<?')) cursor.until('?>', 'processing instruction');
    else if (cursor.startsWith('<')) element.children.push(parseElement(cursor));
    else {
      const next = cursor.source.indexOf('<', cursor.position);
      const end = next < 0 ? cursor.source.length : next;
      element.text += decodeEntities(cursor.source.slice(cursor.position, end), cursor, at);
      cursor.position = end;
    }
  }
}

/** Parses a document with exactly one root element. */
export function parseXml(source: string): XmlElement {
  const cursor = new Cursor(source.startsWith('\uFEFF') ? source.slice(1) : source);
  skipMisc(cursor);
  if (cursor.startsWith('<!DOCTYPE')) cursor.fail('DOCTYPE is not supported');
  if (!cursor.startsWith('<')) cursor.fail('expected the root element');
  const root = parseElement(cursor);
  skipMisc(cursor);
  if (!cursor.done) cursor.fail('content after the root element');
  return root;
}
