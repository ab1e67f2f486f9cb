// Each end of a link as a `Namespace`: every path is resolved inside that end's mount namespace by the native
// layer (pid 0 = the host). Nothing here builds /proc/<pid>/root paths.
import type { Namespace } from '../mediators/types.js';
import { connectIn, listenIn, mknodIn, readFileIn, statIn, unlinkIn } from '../native/namespace.js';

export function namespaceOf(pid: number): Namespace {
  return {
    pid,
    listen: (path, mode) => listenIn({ pid, path, mode }),
    connect: (path, credentials) => connectIn({ pid, path, ...credentials }),
    unlink: (path, ino) => unlinkIn({ pid, path, ino }),
    stat: (path) => statIn({ pid, path }),
    mknod: (node) => mknodIn({ pid, ...node }),
    readFile: (path, maxBytes) => readFileIn({ pid, path, maxBytes }),
  };
}
