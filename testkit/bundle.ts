// Device bundles of this checkout for tests: built with `npm run bundle` and unpacked into a folder of the test's.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../native/package-root.js';
import { runToEnd } from './daemon-process.js';

export const ROOT = PACKAGE_ROOT;
export const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;

/** Builds the bundle of `arch` into `work` and unpacks it there; resolves with the bundle's folder. */
export async function unpackedBundle(arch: 'x64' | 'arm64' | 'arm', work: string): Promise<string> {
  const name = `pv-xconnect-${VERSION}-linux-${arch}`;
  const built = await runToEnd('npm', ['run', '--silent', 'bundle', '--', '--out', work, arch], {
    cwd: ROOT,
  });
  if (built.code !== 0) throw new Error(`npm run bundle -- ${arch} failed:\n${built.stderr}`);
  const unpacked = await runToEnd('tar', ['-xzf', join(work, `${name}.tar.gz`), '-C', work]);
  if (unpacked.code !== 0) throw new Error(`unpacking ${name}.tar.gz failed:\n${unpacked.stderr}`);
  return join(work, name);
}
