import { describe, expect, it } from 'vitest';
import {
  isValidBusName,
  isValidErrorName,
  isValidInterfaceName,
  isValidMemberName,
  isValidObjectPath,
  isValidSignature,
  MAX_SIGNATURE_LENGTH,
  parseSignature,
} from '../../../protocols/dbus/index.js';

const nest = (open: string, inner: string, close: string, times: number) =>
  open.repeat(times) + inner + close.repeat(times);

describe('signatures', () => {
  it.each([
    '',
    'y',
    'ybnqiuxtdhsogv',
    'ai',
    'aai',
    'a{sv}',
    'a{oa{sa{sv}}}',
    '(i)',
    '(ia(sv)(y(d)))',
    'a(yv)',
    'aay',
    'av',
    'a{ys}a{bs}a{ts}a{hs}a{gs}',
    nest('a', 'y', '', 32),
    nest('(', 'y', ')', 32),
    nest('a{s', 'y', '}', 32),
    'y'.repeat(MAX_SIGNATURE_LENGTH),
  ])('accepts %j', (signature) => {
    expect(isValidSignature(signature)).toBe(true);
  });

  it.each([
    ['a', 'array without element type'],
    ['aa', 'array of arrays without element type'],
    ['()', 'empty struct'],
    ['(', 'unclosed struct'],
    ['(i', 'unclosed struct'],
    [')', 'unopened struct'],
    ['i)', 'unopened struct'],
    ['{sv}', 'dict entry outside an array'],
    ['a{}', 'empty dict entry'],
    ['a{s}', 'dict entry with one type'],
    ['a{svv}', 'dict entry with three types'],
    ['a{vs}', 'dict entry with a variant key'],
    ['a{(s)s}', 'dict entry with a struct key'],
    ['a{ais}', 'dict entry with an array key'],
    ['a{sv', 'unclosed dict entry'],
    ['a{sv}}', 'stray close'],
    ['(a{sv)}', 'interleaved brackets'],
    ['r', 'reserved type code'],
    ['e', 'reserved type code'],
    ['m', 'reserved type code'],
    ['*', 'reserved type code'],
    ['z', 'unknown type code'],
    [' ', 'space'],
    ['\u00e9', 'non-ASCII'],
    [nest('a', 'y', '', 33), 'arrays nested 33 deep'],
    [nest('(', 'y', ')', 33), 'structs nested 33 deep'],
    [nest('a{s', 'y', '}', 33), 'dict entries nested 33 deep'],
    ['y'.repeat(MAX_SIGNATURE_LENGTH + 1), 'longer than 255'],
  ])('rejects %j (%s) with BAD_SIGNATURE', (signature) => {
    expect(isValidSignature(signature)).toBe(false);
    expect(() => parseSignature(signature)).toThrow(
      expect.objectContaining({ name: 'DBusProtocolError', code: 'BAD_SIGNATURE' }),
    );
  });

  it('parses into typed nodes with alignments and container depths', () => {
    const [dict, struct, variant] = parseSignature('a{sv}(ad)v');
    expect(dict).toMatchObject({ code: 'a', alignment: 4, depth: 3, element: { code: '{', alignment: 8 } });
    expect(struct).toMatchObject({
      code: '(',
      alignment: 8,
      depth: 2,
      fields: [{ code: 'a', element: { code: 'd' } }],
    });
    expect(variant).toMatchObject({ code: 'v', alignment: 1, depth: 1 });
  });
});

describe('names', () => {
  it('object paths', () => {
    for (const path of ['/', '/a', '/org/freedesktop/DBus', '/_/9/A_b'])
      expect(isValidObjectPath(path)).toBe(true);
    for (const path of ['', 'a', '//', '/a/', '/a//b', '/a-b', '/a.b', '/\u00e9', 'a/b']) {
      expect(isValidObjectPath(path)).toBe(false);
    }
  });

  it('interface and error names', () => {
    for (const name of ['org.freedesktop.DBus', 'a.b', '_a._9', `a.${'b'.repeat(253)}`]) {
      expect(isValidInterfaceName(name)).toBe(true);
      expect(isValidErrorName(name)).toBe(true);
    }
    for (const name of ['org', '', '.a.b', 'a..b', 'a.b.', 'a.9b', '9a.b', 'a-b.c', `a.${'b'.repeat(254)}`]) {
      expect(isValidInterfaceName(name)).toBe(false);
      expect(isValidErrorName(name)).toBe(false);
    }
  });

  it('member names', () => {
    for (const name of ['Hello', '_x', 'a9', 'b'.repeat(255)]) expect(isValidMemberName(name)).toBe(true);
    for (const name of ['', '9a', 'a.b', 'a-b', 'b'.repeat(256)]) expect(isValidMemberName(name)).toBe(false);
  });

  it('bus names', () => {
    for (const name of [':1.42', ':1.0', ':a-b.9', 'org.freedesktop.DBus', 'org.example-x.App', '_a.-b']) {
      expect(isValidBusName(name)).toBe(true);
    }
    for (const name of [
      '',
      ':',
      ':1',
      ':1.',
      ':.1',
      'org',
      'org.9x',
      '.org.x',
      'org..x',
      'a.b.',
      `a.${'b'.repeat(254)}`,
    ]) {
      expect(isValidBusName(name)).toBe(false);
    }
  });
});
