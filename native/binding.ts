// Loads the compiled addon. Works from the sources (native/) and from the build output (dist/native/).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('pv-xconnect: package root not found');
    dir = parent;
  }
  return dir;
}

const require = createRequire(import.meta.url);

/** The raw addon. Each wrapper module (fd-socket.ts, namespace.ts) declares the part it uses. */
export const binding: unknown = require(join(packageRoot(), 'build', 'Release', 'pvx_native.node'));
