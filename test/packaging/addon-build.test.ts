// The checkout's own addon build (npm ci → packaging/install.mjs → node-gyp): made against the headers of the
// Node.js that runs it, not those of whatever `nodedir` the machine's npmrc names (Debian's says /usr: another Node).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

describe('the addon of this checkout', () => {
  it("was built against the running Node.js's own headers", () => {
    const config = readFileSync(join(ROOT, 'build', 'config.gypi'), 'utf8');
    const nodedir = /"nodedir": "([^"]*)"/.exec(config)?.[1];
    expect(nodedir).toBe(dirname(dirname(process.execPath)));
  });
});
