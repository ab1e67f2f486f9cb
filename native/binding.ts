// Loads the compiled addon. Where it looks, in order, below the package root (see package-root.ts):
//   build/Release/pvx_native.node                 built from native/src here (a checkout, or the install fallback)
//   prebuilds/linux-<arch>/pvx_native.node        prebuilt, shipped in the npm package and in device bundles
// The layout is prebuildify's; the loader is ours so that the daemon keeps zero runtime dependencies.
// PVX_NATIVE_ADDON names another build to load instead (the sanitizer build of `npm run test:asan`).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './package-root.js';

const CANDIDATES = [
  join('build', 'Release', 'pvx_native.node'),
  join('prebuilds', `${process.platform}-${process.arch}`, 'pvx_native.node'),
];

function loadAddon(): unknown {
  const require = createRequire(import.meta.url);
  if (process.env.PVX_NATIVE_ADDON) return require(process.env.PVX_NATIVE_ADDON);
  const failures: string[] = [];
  for (const candidate of CANDIDATES) {
    const path = join(PACKAGE_ROOT, candidate);
    if (!existsSync(path)) continue;
    try {
      return require(path);
    } catch (error) {
      failures.push(`${candidate}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(
    `pv-xconnect: no native addon for ${process.platform}-${process.arch} loads from ${PACKAGE_ROOT}` +
      (failures.length > 0 ? ` (${failures.join('; ')})` : '') +
      '; a device bundle carries the addon of its own architecture only; an npm install builds one from source ' +
      'with npm rebuild pv-xconnect (python3, make and a C compiler)',
  );
}

/** The raw addon. Each wrapper module (fd-socket.ts, namespace.ts, notify.ts) declares the part it uses. */
export const binding: unknown = loadAddon();
