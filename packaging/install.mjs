// npm's install step of pv-xconnect (package.json "install"). The package from `npm pack` carries prebuilt addons
// (prebuilds/linux-x64, prebuilds/linux-arm64): where the one for this machine loads, there is nothing to build.
// Anywhere else (another architecture or libc, or a checkout, which has no prebuilds) the addon is built from
// native/src with node-gyp (npm puts its own on PATH for install scripts), against the headers of the Node.js that
// runs this script when that Node has them (the npm registry's and nodejs.org's builds do), not against whatever
// `nodedir` an npmrc names.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const prebuilt = join('prebuilds', `${process.platform}-${process.arch}`, 'pvx_native.node');
if (existsSync(prebuilt)) {
  try {
    createRequire(import.meta.url)(join(process.cwd(), prebuilt));
    process.exit(0);
  } catch (error) {
    console.error(
      `pv-xconnect: the prebuilt ${prebuilt} does not load here (${error.message.split('\n')[0]})`,
    );
  }
}
console.error(`pv-xconnect: building the native addon from source for ${process.platform}-${process.arch}`);
// node-gyp takes npm_config_* variables over its own flags: the headers go in that way.
const prefix = dirname(dirname(process.execPath));
const env = existsSync(join(prefix, 'include', 'node', 'node_api.h'))
  ? { ...process.env, npm_config_nodedir: prefix }
  : process.env;
const gyp = spawnSync('node-gyp', ['rebuild'], { stdio: 'inherit', env });
if (gyp.error) console.error(`pv-xconnect: cannot run node-gyp (${gyp.error.message})`);
process.exit(gyp.status ?? 1);
