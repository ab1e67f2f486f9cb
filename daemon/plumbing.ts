// Each end of a link as a `Namespace`: every path is resolved inside that end's mount namespace by the native
// layer (pid 0 = the host). Nothing here builds /proc/<pid>/root paths.
import type { Credentials, Namespace } from '../mediators/types.js';
import {
  connectIn,
  listenIn,
  type MknodInOptions,
  mknodIn,
  readFileIn,
  statIn,
  unlinkIn,
} from '../native/namespace.js';

/** A listen backlog that is full answers EAGAIN at once: retry briefly before calling the provider unreachable. */
const CONNECT_ATTEMPTS = 8;
const CONNECT_RETRY_MS = 5;

class NamespaceOfPid implements Namespace {
  constructor(readonly pid: number) {}

  listen(path: string, mode: number) {
    return listenIn({ pid: this.pid, path, mode });
  }

  async connect(path: string, credentials?: Credentials) {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await connectIn({ pid: this.pid, path, ...credentials });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || attempt === CONNECT_ATTEMPTS) throw error;
        await new Promise((resolve) => setTimeout(resolve, CONNECT_RETRY_MS * attempt));
      }
    }
  }

  unlink(path: string, ino: number) {
    return unlinkIn({ pid: this.pid, path, ino });
  }

  stat(path: string) {
    return statIn({ pid: this.pid, path });
  }

  mknod(node: Omit<MknodInOptions, 'pid'>) {
    return mknodIn({ pid: this.pid, ...node });
  }

  readFile(path: string, maxBytes: number) {
    return readFileIn({ pid: this.pid, path, maxBytes });
  }
}

export function namespaceOf(pid: number): Namespace {
  return new NamespaceOfPid(pid);
}
