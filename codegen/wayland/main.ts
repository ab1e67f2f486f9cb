// `npm run codegen [-- --check] [--wayland-dir DIR] [--protocols-dir DIR] [--out DIR]`: scans wayland.xml and every
// protocol of wayland-protocols (stable, staging, unstable, in that order) and writes protocols/wayland/generated/.
// --check writes nothing: it exits 1 listing each generated file that is missing, different or extra, and exits 0
// with a note when the XML is not installed (nothing to compare against). Runs from dist/ (after `npm run build`).
// The generator reads and writes files, so it lives here, beside the pure codec it feeds (protocols/wayland/).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PACKAGE_ROOT } from '../../native/package-root.js';
import type { ProtocolSpec } from '../../protocols/wayland/spec.js';
import { type GeneratedFile, generateFiles } from './generate.js';
import { scanProtocol } from './scanner.js';

const PROTOCOL_GROUPS = ['stable', 'staging', 'unstable'];

function xmlFilesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const found: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) found.push(...xmlFilesUnder(path));
    else if (entry.endsWith('.xml')) found.push(path);
  }
  return found;
}

/** The protocol XML files in generation order, each with the name it is recorded under. */
export function findProtocolXml(
  waylandDir: string,
  protocolsDir: string,
): { path: string; source: string }[] {
  const core = join(waylandDir, 'wayland.xml');
  if (!existsSync(core)) return [];
  const files = [{ path: core, source: 'wayland.xml' }];
  for (const group of PROTOCOL_GROUPS) {
    for (const path of xmlFilesUnder(join(protocolsDir, group)))
      files.push({ path, source: relative(protocolsDir, path) });
  }
  return files;
}

export function generateFromXml(waylandDir: string, protocolsDir: string): GeneratedFile[] | null {
  const xml = findProtocolXml(waylandDir, protocolsDir);
  if (xml.length === 0) return null;
  const protocols: ProtocolSpec[] = xml.map(({ path, source }) =>
    scanProtocol(readFileSync(path, 'utf8'), source),
  );
  return generateFiles(protocols);
}

/** Differences between the generated files and what `outDir` holds, one line each. */
export function compareWithCommitted(files: readonly GeneratedFile[], outDir: string): string[] {
  const problems: string[] = [];
  const expected = new Set(files.map((file) => file.name));
  for (const file of files) {
    const path = join(outDir, file.name);
    if (!existsSync(path)) problems.push(`missing: ${file.name}`);
    else if (readFileSync(path, 'utf8') !== file.content) problems.push(`out of date: ${file.name}`);
  }
  if (existsSync(outDir)) {
    for (const name of readdirSync(outDir)) {
      if (name.endsWith('.generated.ts') && !expected.has(name))
        problems.push(`no longer generated: ${name}`);
    }
  }
  return problems;
}

function writeGenerated(files: readonly GeneratedFile[], outDir: string): void {
  mkdirSync(outDir, { recursive: true });
  const expected = new Set(files.map((file) => file.name));
  for (const name of readdirSync(outDir)) {
    if (name.endsWith('.generated.ts') && !expected.has(name)) rmSync(join(outDir, name));
  }
  for (const file of files) {
    const path = join(outDir, file.name);
    if (!existsSync(path) || readFileSync(path, 'utf8') !== file.content) writeFileSync(path, file.content);
  }
}

function main(): number {
  const { values } = parseArgs({
    options: {
      check: { type: 'boolean', default: false },
      'wayland-dir': { type: 'string', default: '/usr/share/wayland' },
      'protocols-dir': { type: 'string', default: '/usr/share/wayland-protocols' },
      out: { type: 'string', default: join(PACKAGE_ROOT, 'protocols', 'wayland', 'generated') },
    },
  });
  const files = generateFromXml(values['wayland-dir'], values['protocols-dir']);
  if (files === null) {
    const note = `codegen: ${join(values['wayland-dir'], 'wayland.xml')} not found (install libwayland-dev and wayland-protocols)`;
    if (values.check) {
      console.log(`${note}; nothing to check`);
      return 0;
    }
    console.error(note);
    return 1;
  }
  if (values.check) {
    const problems = compareWithCommitted(files, values.out);
    for (const problem of problems) console.error(`codegen --check: ${problem}`);
    if (problems.length > 0) {
      console.error(
        'codegen --check: the committed tables do not match the installed XML; run `npm run codegen`',
      );
      return 1;
    }
    console.log(`codegen --check: ${files.length} generated files are up to date`);
    return 0;
  }
  writeGenerated(files, values.out);
  console.log(`codegen: wrote ${files.length} files to ${values.out}`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main();
