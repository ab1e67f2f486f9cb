#!/bin/sh
# pv-xconnect launcher of a device bundle (bin/pv-xconnect): checks that this machine is the bundle's architecture,
# then runs the bundled daemon (lib/pv-xconnect.mjs) on the bundle's Node.js (node/bin/node) or, in a bundle
# without one, on the `node` in PATH (22 or newer: the daemon checks), with the V8 flags of PVX_NODE_FLAGS (default:
# the ones chosen for a small footprint, see docs/packaging.md) and V8's compile cache. Arguments and environment go
# to pv-xconnect.
bundle_arch=@NODE_ARCH@
case "$(uname -m)" in
  @MACHINES@) ;;
  *)
    echo "pv-xconnect: this bundle is for linux-$bundle_arch (@MACHINE_NAMES@), this machine is $(uname -m)" >&2
    exit 1
    ;;
esac
root=$(dirname "$(dirname "$(readlink -f "$0")")")
node=$root/node/bin/node
if [ ! -x "$node" ]; then
  node=$(command -v node) || {
    echo "pv-xconnect: this bundle has no Node.js and there is no node in PATH (Node.js 22 or newer is needed)" >&2
    exit 1
  }
fi
# V8's compile cache (Node.js 22.1+): the daemon is compiled once, later starts read the result. systemd's
# CacheDirectory= names the folder; where it cannot be written Node.js goes without, silently.
NODE_COMPILE_CACHE=${NODE_COMPILE_CACHE-${CACHE_DIRECTORY:-/var/cache/pv-xconnect}}
export NODE_COMPILE_CACHE
# shellcheck disable=SC2086 # the flags are words
exec "$node" ${PVX_NODE_FLAGS-@NODE_FLAGS@} "$root/lib/pv-xconnect.mjs" "$@"
