// Pinned namespaces: a process's mount namespace held by fd, and operations inside it (listen, connect,
// unlink, stat, mknod, read a file), so that every path resolves as that container sees it and never through a
// magic link (/proc/<pid>/root, /proc/<pid>/fd/N). See native/src/pin.c, resolve.c and nsops.c, and docs/native.md.
//
// A pin is taken once per process and never looked up by pid again: `alive()` tells when the process is gone.
// Each pin has one worker thread that runs its operations in order; returned fds are non-blocking and CLOEXEC,
// and the caller owns them (close them, or hand them to FdSocket / net). Release a pin when done with it.
import { closeSync } from 'node:fs';
import { constants } from 'node:os';
import { binding } from './binding.js';

export interface ListenOptions {
  /** Permission bits of the socket file. Default 0o666. */
  mode?: number;
  /** listen(2) backlog. Default 128. */
  backlog?: number;
}

/** What was planted: its inode and device (for unlink), and for listen the listening fd. */
export interface PlantedNode {
  fd: number;
  ino: number;
  dev: number;
}

export interface Credentials {
  /** uid and gid go together: the connection then carries exactly them (SO_PEERCRED) and `groups`. */
  uid: number;
  gid: number;
  /** Supplementary groups of the connection (SO_PEERGROUPS). Default []. */
  groups?: number[];
}

export interface NodeStat {
  type: 'socket' | 'char' | 'block' | 'file' | 'dir' | 'symlink' | 'fifo';
  /** Permission bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  ino: number;
  dev: number;
  rdevMajor: number;
  rdevMinor: number;
  size: number;
}

export interface MknodOptions {
  path: string;
  /** Exact permission bits (the umask does not apply). */
  mode: number;
  major: number;
  minor: number;
  uid: number;
  gid: number;
  /** Default 'char'. */
  type?: 'char' | 'block';
}

/** An operation's failure: `code` is the errno name, `syscall` the step that failed. */
export interface NamespaceError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path: string;
  pid: number;
}

/** What the running kernel offers (and the namespace layer uses). */
export interface KernelFeatures {
  /** openat2(RESOLVE_NO_MAGICLINKS), Linux 5.6; else paths are walked one component at a time. */
  openat2: boolean;
  /** pidfd_open, Linux 5.3; else a /proc/<pid> directory fd stands for the process. */
  pidfd: boolean;
}

type Handle = { readonly __pin: unique symbol };

/** The raw addon functions (nsops.c). Options the C side takes positionally; null = not given. */
interface NsBinding {
  pin(pid: number): Handle;
  alive(handle: Handle): boolean;
  release(handle: Handle): void;
  listenIn(handle: Handle, path: string, mode: number, backlog: number): Promise<PlantedNode>;
  connectIn(
    handle: Handle,
    path: string,
    uid: number | null,
    gid: number | null,
    groups: number[] | null,
  ): Promise<number>;
  unlinkIn(handle: Handle, path: string, ino: number): Promise<boolean>;
  statIn(handle: Handle, path: string): Promise<NodeStat>;
  mknodIn(
    handle: Handle,
    path: string,
    blockDevice: boolean,
    mode: number,
    major: number,
    minor: number,
    uid: number,
    gid: number,
  ): Promise<{ ino: number; dev: number }>;
  readFileIn(handle: Handle, path: string, maxBytes: number): Promise<Buffer>;
  resolveSocketIn(handle: Handle, path: string): Promise<number>;
  resolveSocketHost(path: string): number;
  connectSocket(inode: number, path: string, pid: number): number;
  kernelFeatures(overrides?: Partial<KernelFeatures>): KernelFeatures;
}

const native = binding as NsBinding;

/** sun_path holds 108 bytes including the terminating NUL. */
export const SOCKET_PATH_MAX = 107;
const PATH_MAX = 4095;
const ID_MAX = 0xfffffffe; // (uid_t)-1 means "unchanged" to the kernel
const GROUPS_MAX = 65536;
/** An operation's worker may be stuck in the kernel (a hung FUSE or NFS mount inside the container): the
 * caller gets ETIMEDOUT after this long and a late result is disposed of. */
export const OPERATION_TIMEOUT_MS = 10_000;

/**
 * The kernel features in use. Tests turn features off to exercise the fallbacks (`{openat2: false}`); a
 * feature the kernel lacks cannot be turned on. Applies to operations and pins started afterwards.
 */
export function kernelFeatures(overrides?: Partial<KernelFeatures>): KernelFeatures {
  return native.kernelFeatures(overrides);
}

function where(pid: number): string {
  return pid === 0 ? '(host)' : `(pid ${pid})`;
}

function namespaceError(
  op: string,
  path: string,
  pid: number,
  code: string,
  detail: string,
  syscall = 'arguments',
): NamespaceError {
  const error = new Error(`${op} ${path} ${where(pid)}: ${code} (${detail})`) as NamespaceError;
  error.code = code;
  error.errno = (constants.errno as Record<string, number>)[code] ?? 0;
  error.syscall = syscall;
  error.path = path;
  error.pid = pid;
  return error;
}

/** True for the error of an operation refused because the pinned process is gone. */
export function isGoneError(error: unknown): boolean {
  const { code, syscall } = error as Partial<NamespaceError>;
  return code === 'ESRCH' && (syscall === 'liveness' || syscall === 'pin' || syscall === 'pidfd_open');
}

function isUint(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max;
}

/** Throws the EINVAL / ENAMETOOLONG the addon would reject with, before anything is queued. */
function checkPath(op: string, pid: number, path: unknown, maxBytes: number): asserts path is string {
  const shown = String(path);
  if (typeof path !== 'string') throw namespaceError(op, shown, pid, 'EINVAL', 'path must be a string');
  if (!path.startsWith('/')) throw namespaceError(op, path, pid, 'EINVAL', 'path must be absolute');
  if (path.includes('\0')) throw namespaceError(op, path, pid, 'EINVAL', 'path contains a NUL byte');
  if (Buffer.byteLength(path) > maxBytes) {
    const detail = maxBytes === SOCKET_PATH_MAX ? 'socket paths are at most 107 bytes' : 'path too long';
    throw namespaceError(op, path, pid, 'ENAMETOOLONG', detail);
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** Disposes of what a late operation produced: an fd, or a planted node's listening fd. */
function disposeLate(value: unknown): void {
  if (typeof value === 'number') closeQuietly(value);
  else if (typeof (value as PlantedNode | null)?.fd === 'number') closeQuietly((value as PlantedNode).fd);
}

/** `operation`, or ETIMEDOUT after `timeoutMs`; a result that arrives later is disposed of. */
export function withDeadline<T>(operation: Promise<T>, timeoutMs: number, timedOut: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(timedOut());
    }, timeoutMs);
    operation.then(
      (value) => {
        clearTimeout(timer);
        if (late) disposeLate(value);
        else resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!late) reject(error);
      },
    );
  });
}

export interface PinOptions {
  /** Deadline of each operation. Default OPERATION_TIMEOUT_MS. */
  timeoutMs?: number;
}

/** One process's pinned mount namespace (pid 0: the host's own, never gone). */
export class PinnedNamespace {
  private handle: Handle | null;
  private readonly timeoutMs: number;

  private constructor(
    handle: Handle,
    readonly pid: number,
    options: PinOptions,
  ) {
    this.handle = handle;
    this.timeoutMs = options.timeoutMs ?? OPERATION_TIMEOUT_MS;
  }

  /**
   * Pins the mount namespace of `pid` (0: the host). Throws ESRCH when there is no such process, EPERM with
   * "pid N is not in a container" when its mount namespace is the daemon's own.
   */
  static pin(pid: number, options: PinOptions = {}): PinnedNamespace {
    return new PinnedNamespace(native.pin(pid), pid, options);
  }

  get released(): boolean {
    return this.handle === null;
  }

  /** false once the pinned process has exited (always true for the host). One system call. */
  alive(): boolean {
    return this.handle !== null && native.alive(this.handle);
  }

  /** Queued operations still finish; later ones are refused. Idempotent. */
  release(): void {
    if (this.handle) native.release(this.handle);
    this.handle = null;
  }

  /**
   * Plants a listening socket at `path`: creates missing parents (0755), refuses (EEXIST) when `path` exists
   * and is not a socket, binds a temporary name in the same directory, chmods, listens, and renames it over
   * `path`, so an existing socket there is replaced atomically. Returns a non-blocking listening fd and the
   * inode/dev.
   */
  listen(path: string, options: ListenOptions = {}): Promise<PlantedNode> {
    const { mode = 0o666, backlog = 128 } = options;
    return this.run('listenIn', path, SOCKET_PATH_MAX, (handle) => {
      this.check(isUint(mode, 0o7777), 'listenIn', path, 'mode must be permission bits');
      this.check(isUint(backlog, 0x7fffffff), 'listenIn', path, 'backlog must be an integer >= 0');
      return native.listenIn(handle, path, mode, backlog);
    });
  }

  /**
   * Connects a stream socket to `path`. With credentials, the connection is made by the worker running as
   * exactly uid/gid/groups (only that thread, only for that call). Returns a non-blocking fd.
   */
  connect(path: string, credentials?: Credentials): Promise<number> {
    if (!credentials && this.pid === 0 && this.handle) {
      // The host side needs no namespace and no thread: dialled here, at once.
      return this.resolveSocket(path).then((inode) => {
        try {
          return connectSocket(inode, path, 0);
        } finally {
          closeQuietly(inode);
        }
      });
    }
    return this.run('connectIn', path, SOCKET_PATH_MAX, (handle) => {
      if (!credentials) return native.connectIn(handle, path, null, null, null);
      const { uid, gid, groups = [] } = credentials;
      this.check(
        isUint(uid, ID_MAX) && isUint(gid, ID_MAX),
        'connectIn',
        path,
        'uid and gid must both be given, integers < 2^32 - 1',
      );
      this.check(
        Array.isArray(groups) && groups.length <= GROUPS_MAX && groups.every((g) => isUint(g, ID_MAX)),
        'connectIn',
        path,
        'groups must be an array of at most 65536 gids',
      );
      return native.connectIn(handle, path, uid, gid, groups);
    });
  }

  /**
   * The socket inode `path` names, as an O_PATH fd the caller owns: resolved inside the namespace without magic
   * links; ECONNREFUSED ("not a socket") when it is something else. `connectSocket` dials it from this thread,
   * as often as wanted, with no namespace operation: a dial without credentials needs nothing else.
   */
  resolveSocket(path: string): Promise<number> {
    if (this.pid === 0 && this.handle) {
      try {
        checkPath('resolveSocketIn', 0, path, SOCKET_PATH_MAX);
        return Promise.resolve(native.resolveSocketHost(path));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.run('resolveSocketIn', path, SOCKET_PATH_MAX, (handle) =>
      native.resolveSocketIn(handle, path),
    );
  }

  /** Removes `path` only while it is still inode `ino`; false when it is absent or another inode. Works also
   * after the pinned process is gone (its namespace is still held), so what we planted can be cleaned up. */
  unlink(path: string, ino: number): Promise<boolean> {
    return this.run('unlinkIn', path, PATH_MAX, (handle) => {
      this.check(isUint(ino, Number.MAX_SAFE_INTEGER), 'unlinkIn', path, 'ino must be an integer >= 0');
      return native.unlinkIn(handle, path, ino);
    });
  }

  /** lstat (a symlink at `path` is described, not followed). Absent → rejects with ENOENT. */
  stat(path: string): Promise<NodeStat> {
    return this.run('statIn', path, PATH_MAX, (handle) => native.statIn(handle, path));
  }

  /**
   * Plants a device node at `path` with exactly the given mode and owner: parents (0755), mknod at a temporary
   * name, chown, chmod, rename over `path`. Refuses (EEXIST) when `path` exists and is not a device of that type.
   */
  mknod(node: MknodOptions): Promise<{ ino: number; dev: number }> {
    const { path, mode, major, minor, uid, gid, type = 'char' } = node;
    return this.run('mknodIn', path, PATH_MAX, (handle) => {
      const check = (ok: boolean, detail: string) => this.check(ok, 'mknodIn', path, detail);
      check(type === 'char' || type === 'block', "type must be 'char' or 'block'");
      check(isUint(mode, 0o7777), 'mode must be permission bits');
      check(isUint(major, 4095), 'major must be an integer in [0, 4095]');
      check(isUint(minor, 1048575), 'minor must be an integer in [0, 1048575]');
      check(isUint(uid, ID_MAX), 'uid must be an integer < 2^32 - 1');
      check(isUint(gid, ID_MAX), 'gid must be an integer < 2^32 - 1');
      return native.mknodIn(handle, path, type === 'block', mode, major, minor, uid, gid);
    });
  }

  /** Reads a regular file (ordinary symlinks followed inside the namespace). Over maxBytes → EFBIG. A device or
   * fifo is refused without being opened. */
  readFile(path: string, maxBytes: number): Promise<Buffer> {
    return this.run('readFileIn', path, PATH_MAX, (handle) => {
      this.check(isUint(maxBytes, 2 ** 30), 'readFileIn', path, 'maxBytes must be an integer in [0, 2^30]');
      return native.readFileIn(handle, path, maxBytes);
    });
  }

  private check(ok: boolean, op: string, path: string, detail: string): void {
    if (!ok) throw namespaceError(op, path, this.pid, 'EINVAL', detail);
  }

  /** Checks the path, queues the operation on the worker, bounds the wait. Never throws: rejects. */
  private async run<T>(
    op: string,
    path: string,
    maxBytes: number,
    queue: (handle: Handle) => Promise<T>,
  ): Promise<T> {
    checkPath(op, this.pid, path, maxBytes);
    if (!this.handle)
      throw namespaceError(op, path, this.pid, 'EBADF', 'the namespace was released', 'submit');
    return withDeadline(queue(this.handle), this.timeoutMs, () =>
      namespaceError(
        op,
        path,
        this.pid,
        'ETIMEDOUT',
        `no answer from the namespace within ${this.timeoutMs} ms`,
        'deadline',
      ),
    );
  }
}

/**
 * Connects a new non-blocking stream socket to the socket inode `inode` holds (from `resolveSocket`, which stays
 * the caller's): through our own /proc/self/fd, so the kernel follows our fd, never a name. `path` and `pid` only
 * label an error (ECONNREFUSED: nothing listens on that socket any more).
 */
export function connectSocket(inode: number, path: string, pid: number): number {
  return native.connectSocket(inode, path, pid);
}

/** Runs one operation on a pin of `pid` taken for it alone (tools and tests; the daemon keeps its pins). */
async function once<T>(pid: number, operation: (namespace: PinnedNamespace) => Promise<T>): Promise<T> {
  const namespace = PinnedNamespace.pin(pid);
  try {
    return await operation(namespace);
  } finally {
    namespace.release();
  }
}

export const listenIn = (o: { pid: number; path: string } & ListenOptions) =>
  once(o.pid, (ns) => ns.listen(o.path, o));
export const connectIn = (o: { pid: number; path: string } & Partial<Credentials>) =>
  once(o.pid, (ns) =>
    ns.connect(
      o.path,
      o.uid === undefined && o.gid === undefined && o.groups === undefined ? undefined : (o as Credentials),
    ),
  );
export const unlinkIn = (o: { pid: number; path: string; ino: number }) =>
  once(o.pid, (ns) => ns.unlink(o.path, o.ino));
export const statIn = (o: { pid: number; path: string }) => once(o.pid, (ns) => ns.stat(o.path));
export const mknodIn = (o: { pid: number } & MknodOptions) => once(o.pid, (ns) => ns.mknod(o));
export const readFileIn = (o: { pid: number; path: string; maxBytes: number }) =>
  once(o.pid, (ns) => ns.readFile(o.path, o.maxBytes));
