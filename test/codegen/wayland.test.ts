// The Wayland generator (codegen/wayland/): the XML reader, the scanner's checks, and that the committed tables are
// exactly what the installed XML gives.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateFiles } from '../../codegen/wayland/generate.js';
import { compareWithCommitted, generateFromXml } from '../../codegen/wayland/main.js';
import { ScannerError, scanProtocol } from '../../codegen/wayland/scanner.js';
import { parseXml, XmlError } from '../../codegen/wayland/xml.js';

const GENERATED = join(import.meta.dirname, '..', '..', 'protocols', 'wayland', 'generated');

function protocolXml(body: string, name = 'demo'): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<!-- a comment -->\n<protocol name="${name}">\n${body}\n</protocol>\n`;
}

describe('the XML reader', () => {
  it('reads elements, attributes, text, entities, comments and CDATA', () => {
    const root = parseXml(
      `<?xml version="1.0"?><a x="1 &amp; 2" y='&lt;q&gt;'>t&#65;&#x42;<!-- c --><b/><![CDATA[<raw>]]><c z="&quot;"></c></a>`,
    );
    expect(root).toEqual({
      name: 'a',
      attributes: { x: '1 & 2', y: '<q>' },
      text: 'tAB<raw>',
      children: [
        { name: 'b', attributes: {}, children: [], text: '' },
        { name: 'c', attributes: { z: '"' }, children: [], text: '' },
      ],
    });
  });

  it('names the line of what it cannot read', () => {
    const cases: [string, RegExp][] = [
      ['<a>\n<b>\n</a>', /line 3: '<\/a>' closes '<b>'/],
      ['<a x=1/>', /needs a quoted value/],
      ['<a x="1" x="2"/>', /duplicate attribute 'x'/],
      ['<a>&nope;</a>', /unknown entity '&nope;'/],
      ['<a>\n\n<!-- open', /line 3: unterminated comment/],
      ['<a/><b/>', /content after the root element/],
      ['<a>', /element 'a' is not closed/],
      ['<!DOCTYPE a><a/>', /DOCTYPE is not supported/],
    ];
    for (const [xml, message] of cases) expect(() => parseXml(xml)).toThrow(message);
    expect(() => parseXml('<a')).toThrow(XmlError);
  });
});

describe('the scanner', () => {
  it('reads interfaces, messages, argument types, nullability, destructors, since and enums', () => {
    const protocol = scanProtocol(
      protocolXml(`
  <interface name="demo_thing" version="3">
    <description summary="x">text</description>
    <request name="destroy" type="destructor"/>
    <request name="make" since="2">
      <arg name="id" type="new_id" interface="demo_thing"/>
      <arg name="title" type="string" allow-null="true"/>
      <arg name="fd" type="fd"/>
      <arg name="mode" type="uint" enum="mode"/>
    </request>
    <event name="bound"><arg name="id" type="new_id"/><arg name="x" type="fixed"/></event>
    <enum name="mode" bitfield="true"><entry name="a" value="0x1"/><entry name="90" value="2"/></enum>
  </interface>`),
      'demo.xml',
    );
    expect(protocol).toEqual({
      name: 'demo',
      source: 'demo.xml',
      interfaces: [
        {
          name: 'demo_thing',
          version: 3,
          requests: [
            { name: 'destroy', opcode: 0, since: 1, destructor: true, args: [] },
            {
              name: 'make',
              opcode: 1,
              since: 2,
              args: [
                { name: 'id', type: 'new_id', interface: 'demo_thing' },
                { name: 'title', type: 'string', nullable: true },
                { name: 'fd', type: 'fd' },
                { name: 'mode', type: 'uint', enum: 'mode' },
              ],
            },
          ],
          events: [
            {
              name: 'bound',
              opcode: 0,
              since: 1,
              args: [
                { name: 'id', type: 'new_id' },
                { name: 'x', type: 'fixed' },
              ],
            },
          ],
          enums: [{ name: 'mode', bitfield: true, entries: { a: 1, '90': 2 } }],
        },
      ],
    });
  });

  it('refuses what wayland-scanner refuses', () => {
    const cases: [string, RegExp][] = [
      ['<interface name="a" version="0"/>', /version '0' is not a positive integer/],
      ['<interface name="a-b" version="1"/>', /'a-b' is not a valid name/],
      [
        '<interface name="a" version="1"><request name="r"><arg name="x" type="double"/></request></interface>',
        /unknown type 'double'/,
      ],
      [
        '<interface name="a" version="1"><request name="r"><arg name="x" type="int" interface="b"/></request></interface>',
        /interface is only valid on object and new_id/,
      ],
      [
        '<interface name="a" version="1"><request name="r"><arg name="x" type="int" allow-null="true"/></request></interface>',
        /allow-null is only valid/,
      ],
      [
        '<interface name="a" version="1"><request name="r" since="2"/></interface>',
        /since 2 is above the interface version 1/,
      ],
      [
        '<interface name="a" version="1"><request name="r"/><request name="r"/></interface>',
        /duplicate request 'r'/,
      ],
      ['<interface name="a" version="1"/><interface name="a" version="1"/>', /duplicate interface 'a'/],
      [
        '<interface name="a" version="1"><enum name="e"><entry name="x" value="-1"/></enum></interface>',
        /enum value '-1' is not a uint/,
      ],
    ];
    for (const [body, message] of cases) {
      expect(() => scanProtocol(protocolXml(body), 'bad.xml')).toThrow(message);
    }
    expect(() => scanProtocol('<interfaces/>', 'bad.xml')).toThrow(ScannerError);
  });

  it('skips a whole protocol whose interface names an earlier one already defines', () => {
    const first = scanProtocol(protocolXml('<interface name="shared" version="1"/>', 'one'), 'one.xml');
    const second = scanProtocol(
      protocolXml('<interface name="own" version="1"/><interface name="shared" version="2"/>', 'two'),
      'two.xml',
    );
    const files = generateFiles([first, second]);
    expect(files.map((file) => file.name)).toEqual(['one.generated.ts', 'index.generated.ts']);
    expect(files[1]?.content).toContain("reason: 'interface \\'shared\\' is already defined by one.xml'");
  });
});

describe('codegen', () => {
  const files = generateFromXml('/usr/share/wayland', '/usr/share/wayland-protocols');

  it('finds the installed XML and generates the same files twice', () => {
    expect(files).not.toBeNull();
    expect(generateFromXml('/usr/share/wayland', '/usr/share/wayland-protocols')).toEqual(files);
    expect(files?.map((file) => file.name)).toContain('xdg-shell.generated.ts');
  });

  it('finds the committed tables up to date (what `npm run codegen -- --check` verifies in CI)', () => {
    expect(compareWithCommitted(files ?? [], GENERATED)).toEqual([]);
  });

  it('reports a changed, a missing and a stale file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pvx-codegen-'));
    try {
      for (const file of files ?? []) writeFileSync(join(dir, file.name), file.content);
      writeFileSync(
        join(dir, 'viewporter.generated.ts'),
        `${readFileSync(join(dir, 'viewporter.generated.ts'), 'utf8')}// edited\n`,
      );
      rmSync(join(dir, 'wayland.generated.ts'));
      writeFileSync(join(dir, 'gone.generated.ts'), '');
      expect(compareWithCommitted(files ?? [], dir).sort()).toEqual([
        'missing: wayland.generated.ts',
        'no longer generated: gone.generated.ts',
        'out of date: viewporter.generated.ts',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
