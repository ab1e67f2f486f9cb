// Each end of a link as a `Namespace` over a pinned mount namespace (native/namespace.ts): every path is resolved
// inside that end's namespace, never through a magic link, and the end is never looked up by pid again.
//
// Pins are shared: one per live process, however many links name it (so one worker thread per container), plus
// one for the host (`_pv_`). A pin whose process is gone is never used for anything but cleanup: the links on
// it are told once (`onGone`) and a later lease of that pid pins afresh, which refuses a host process.
import { readFile } from 'node:fs/promises';
import type { Credentials, Namespace } from '../mediators/types.js';
import { closeFds } from '../native/fds.js';
import { connectSocket, isGoneError, type MknodOptions, PinnedNamespace } from '../native/namespace.js';

export type End = 'consumer' | 'provider';

/** A listen backlog that is full answers EAGAIN at once: retry briefly before calling the provider unreachable. */
const CONNECT_ATTEMPTS = 8;
const CONNECT_RETRY_MS = 5;
/** The files readProcessFile may read: plain names in /proc/<pid>. */
const PROCESS_FILE = /^[a-z_]+$/;

class SharedPin {
  leases = 0;
  gone = false;
  readonly watchers = new Set<() => void>();
  constructor(readonly pinned: PinnedNamespace) {}
}

/** The host's own pin (`_pv_` ends, and where mediators read configuration files): one for the process's life,
 * taken when first used. Never gone, never released. */
let hostPin: SharedPin | null = null;

function theHostPin(): SharedPin {
  hostPin ??= new SharedPin(PinnedNamespace.pin(0));
  return hostPin;
}

/** The daemon's own namespace as a `Namespace` (pid 0). */
export function hostNamespace(): Namespace {
  return new EndNamespace(theHostPin(), 'host', () => {});
}

/** One link end's use of a shared pin. */
export interface Lease {
  readonly namespace: Namespace;
  /** Stops watching; the pin is released with its last lease. Idempotent. */
  release(): void;
}

/** Which end an error came from, for the link's status. */
export interface EndError extends Error {
  end?: End | 'host';
}

export class Pins {
  private readonly byPid = new Map<number, SharedPin>();

  /** Pinned container processes: what one sweep checks. */
  get size(): number {
    return this.byPid.size;
  }

  /**
   * A lease on the pinned namespace of `pid` (0: the host), shared with the other links that name the same live
   * process. Throws as PinnedNamespace.pin does (ESRCH: no such process; EPERM "pid N is not in a container").
   * `onGone` runs once when the process is found gone.
   */
  lease(pid: number, end: End, onGone: () => void): Lease {
    if (pid === 0) {
      const namespace = new EndNamespace(theHostPin(), end, () => {}, true);
      return { namespace, release: () => namespace.endLease() };
    }
    let shared = this.byPid.get(pid);
    if (shared && !shared.gone && !shared.pinned.alive()) this.markGone(shared);
    if (!shared || shared.gone) {
      shared = new SharedPin(PinnedNamespace.pin(pid));
      this.byPid.set(pid, shared);
    }
    const pin = shared;
    pin.leases += 1;
    pin.watchers.add(onGone);
    let released = false;
    const namespace = new EndNamespace(pin, end, () => this.markGone(pin), true);
    return {
      namespace,
      release: () => {
        if (released) return;
        released = true;
        namespace.endLease();
        pin.watchers.delete(onGone);
        pin.leases -= 1;
        if (pin.leases > 0) return;
        pin.pinned.release();
        if (this.byPid.get(pin.pinned.pid) === pin) this.byPid.delete(pin.pinned.pid);
      },
    };
  }

  /** Checks every pinned process once (one system call each) and tells the links of those that are gone. */
  sweep(): void {
    for (const shared of [...this.byPid.values()]) {
      if (!shared.pinned.alive()) this.markGone(shared);
    }
  }

  private markGone(shared: SharedPin): void {
    if (shared.gone) return;
    shared.gone = true;
    // Its pid may be anyone's now: the next lease of it pins again.
    if (this.byPid.get(shared.pinned.pid) === shared) this.byPid.delete(shared.pinned.pid);
    for (const watcher of [...shared.watchers]) watcher();
  }
}

/** The socket a link end dials, kept between dials: see EndNamespace.dial. */
interface KnownSocket {
  path: string;
  /** O_PATH fd of the socket inode `path` named when it was resolved. */
  inode: number;
}

class EndNamespace implements Namespace {
  private known: KnownSocket | null = null;
  private leaseOver = false;

  /** `keepsSockets`: a link end's, whose lease closes them (endLease); the process-wide host namespace
   * keeps none, so it never holds a file of a mount someone may want to unmount. */
  constructor(
    private readonly shared: SharedPin,
    private readonly end: End | 'host',
    private readonly reportGone: () => void,
    private readonly keepsSockets = false,
  ) {}

  get pid(): number {
    return this.shared.pinned.pid;
  }

  listen(path: string, mode: number) {
    return this.guard(this.shared.pinned.listen(path, { mode }));
  }

  async connect(path: string, credentials?: Credentials) {
    for (let attempt = 1; ; attempt += 1) {
      try {
        // With credentials the pin's worker dials as that identity: the kernel records who connected.
        return await (credentials
          ? this.guard(this.shared.pinned.connect(path, credentials))
          : this.dial(path));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || attempt === CONNECT_ATTEMPTS) throw error;
        await new Promise((resolve) => setTimeout(resolve, CONNECT_RETRY_MS * attempt));
      }
    }
  }

  /**
   * Dials `path` as the daemon. A link end keeps the socket inode the path last resolved to (inside the namespace,
   * without magic links) and dials it again from this thread while the pinned process lives: no worker hop, no
   * path walk per connection. When that socket refuses (its provider closed or replaced it), the path is resolved
   * afresh; so a dial reaches the socket `path` named at the last resolve that still listens.
   */
  private async dial(path: string): Promise<number> {
    const now = this.connectNow(path);
    if (now !== null) return now;
    const { pinned } = this.shared;
    const inode = await this.guard(pinned.resolveSocket(path));
    try {
      return connectSocket(inode, path, pinned.pid);
    } catch (error) {
      throw this.label(error as EndError);
    } finally {
      this.keep(path, inode);
    }
  }

  /** A dial through the socket kept for `path` while the pinned process lives; null when there is none or it
   * fails in any way (then `connect` takes the long way, which says why). */
  connectNow(path: string): number | null {
    const { pinned } = this.shared;
    if (this.known?.path !== path || !pinned.alive()) return null;
    try {
      return connectSocket(this.known.inode, path, pinned.pid);
    } catch {
      return null;
    }
  }

  /** Keeps `inode` as the socket `path` names while the lease runs (a link end's), else closes it. */
  private keep(path: string, inode: number): void {
    this.forgetSocket();
    if (this.keepsSockets && !this.leaseOver) this.known = { path, inode };
    else closeFds([inode]);
  }

  private forgetSocket(): void {
    if (this.known) closeFds([this.known.inode]);
    this.known = null;
  }

  /** The lease is over: the kept socket inode is closed and none is kept from now on. */
  endLease(): void {
    this.leaseOver = true;
    this.forgetSocket();
  }

  unlink(path: string, ino: number) {
    return this.guard(this.shared.pinned.unlink(path, ino));
  }

  stat(path: string) {
    return this.guard(this.shared.pinned.stat(path));
  }

  mknod(node: MknodOptions) {
    return this.guard(this.shared.pinned.mknod(node));
  }

  readFile(path: string, maxBytes: number) {
    return this.guard(this.shared.pinned.readFile(path, maxBytes));
  }

  async readProcessFile(name: string, maxBytes: number): Promise<string> {
    const { pinned } = this.shared;
    if (pinned.pid === 0 || !PROCESS_FILE.test(name)) {
      throw this.label(new Error(`readProcessFile ${name}: only /proc/<pid>/<name> of a container`));
    }
    const gone = () => {
      this.reportGone();
      return this.label(Object.assign(new Error(`${this.end} gone`), { code: 'ESRCH' }));
    };
    if (!pinned.alive()) throw gone();
    const text = await this.guard(readFile(`/proc/${pinned.pid}/${name}`, 'utf8'));
    // Alive after the read: the pid named the pinned process throughout, so the file was its own.
    if (!pinned.alive()) throw gone();
    if (Buffer.byteLength(text) > maxBytes)
      throw this.label(new Error(`/proc/<pid>/${name}: over ${maxBytes} bytes`));
    return text;
  }

  private async guard<T>(operation: Promise<T>): Promise<T> {
    try {
      return await operation;
    } catch (error) {
      if (isGoneError(error)) this.reportGone();
      throw this.label(error as Error);
    }
  }

  private label(error: EndError): EndError {
    error.end ??= this.end;
    return error;
  }
}
