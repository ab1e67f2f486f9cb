// Namespace operations: listen, connect, unlink, stat, mknod and read a file inside the mount namespace of a
// process, so that every path (and every symlink on it) resolves as that container sees it. pid 0 = the host.
// Each call runs on a dedicated native thread (see native/src/nsops.c); the returned fds are CLOEXEC, and the
// caller owns them (close them, or hand them to net.Server / net.Socket).
import { constants } from 'node:os';
import { binding } from './binding.js';

export interface ListenInOptions {
  pid: number;
  path: string;
  /** Permission bits of the socket file. Default 0o666. */
  mode?: number;
  /** listen(2) backlog. Default 128. */
  backlog?: number;
}

/** What was planted: its inode and device (for unlinkIn), and for listenIn the listening fd. */
export interface PlantedNode {
  fd: number;
  ino: number;
  dev: number;
}

export interface ConnectInOptions {
  pid: number;
  path: string;
  /** uid and gid go together: the connection then carries exactly them (SO_PEERCRED) and `groups`. */
  uid?: number;
  gid?: number;
  /** Supplementary groups of the connection (SO_PEERGROUPS). Default []. Only with uid and gid. */
  groups?: number[];
}

export interface UnlinkInOptions {
  pid: number;
  path: string;
  /** The inode we planted: the path is removed only while it still names that inode. */
  ino: number;
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

export interface MknodInOptions {
  pid: number;
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

export interface ReadFileInOptions {
  pid: number;
  path: string;
  /** Larger files are refused with EFBIG. */
  maxBytes: number;
}

/** An operation's failure: `code` is the errno name, `syscall` the step that failed. */
export interface NamespaceError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path: string;
  pid: number;
}

/** The raw addon functions (nsops.c). Options the C side takes positionally; null = not given. */
interface NsBinding {
  listenIn(pid: number, path: string, mode: number, backlog: number): Promise<PlantedNode>;
  connectIn(
    pid: number,
    path: string,
    uid: number | null,
    gid: number | null,
    groups: number[] | null,
  ): Promise<number>;
  unlinkIn(pid: number, path: string, ino: number): Promise<boolean>;
  statIn(pid: number, path: string): Promise<NodeStat>;
  mknodIn(
    pid: number,
    path: string,
    blockDevice: boolean,
    mode: number,
    major: number,
    minor: number,
    uid: number,
    gid: number,
  ): Promise<{ ino: number; dev: number }>;
  readFileIn(pid: number, path: string, maxBytes: number): Promise<Buffer>;
}

const native = binding as NsBinding;

/** sun_path holds 108 bytes including the terminating NUL. */
export const SOCKET_PATH_MAX = 107;
const PATH_MAX = 4095;
const ID_MAX = 0xfffffffe; // (uid_t)-1 means "unchanged" to the kernel
const GROUPS_MAX = 65536;

function namespaceError(op: string, path: string, pid: number, code: string, detail: string): NamespaceError {
  const error = new Error(`${op} ${path} (pid ${pid}): ${code} (${detail})`) as NamespaceError;
  error.code = code;
  error.errno = (constants.errno as Record<string, number>)[code] ?? 0;
  error.syscall = 'arguments';
  error.path = path;
  error.pid = pid;
  return error;
}

function isUint(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max;
}

/** Throws the EINVAL / ENAMETOOLONG the addon would reject with, before any thread is started. */
function checkTarget(op: string, pid: unknown, path: unknown, maxBytes: number): void {
  const shown = String(path);
  const where = typeof pid === 'number' ? pid : 0;
  if (typeof path !== 'string') throw namespaceError(op, shown, where, 'EINVAL', 'path must be a string');
  if (!path.startsWith('/')) throw namespaceError(op, path, where, 'EINVAL', 'path must be absolute');
  if (path.includes('\0')) throw namespaceError(op, path, where, 'EINVAL', 'path contains a NUL byte');
  if (Buffer.byteLength(path) > maxBytes) {
    const detail = maxBytes === SOCKET_PATH_MAX ? 'socket paths are at most 107 bytes' : 'path too long';
    throw namespaceError(op, path, where, 'ENAMETOOLONG', detail);
  }
  if (!isUint(pid, 0x7fffffff))
    throw namespaceError(op, path, where, 'EINVAL', 'pid must be an integer >= 0');
}

function checkArgument(ok: boolean, op: string, path: string, pid: number, detail: string): void {
  if (!ok) throw namespaceError(op, path, pid, 'EINVAL', detail);
}

/**
 * Plants a listening socket at `path`: creates missing parents (0755), refuses (EEXIST) when `path` exists and
 * is not a socket, binds a temporary name in the same directory, chmods, listens, and renames it over `path`,
 * so an existing socket there is replaced atomically. Returns a non-blocking listening fd and the inode/dev.
 */
export async function listenIn(o: ListenInOptions): Promise<PlantedNode> {
  const { pid, path, mode = 0o666, backlog = 128 } = o;
  checkTarget('listenIn', pid, path, SOCKET_PATH_MAX);
  checkArgument(isUint(mode, 0o7777), 'listenIn', path, pid, 'mode must be permission bits');
  checkArgument(isUint(backlog, 0x7fffffff), 'listenIn', path, pid, 'backlog must be an integer >= 0');
  return native.listenIn(pid, path, mode, backlog);
}

/**
 * Connects a stream socket to `path`. With uid and gid, the connection is made by a thread running as exactly
 * uid/gid/groups (only that thread: the process keeps its identity). Returns a non-blocking fd.
 */
export async function connectIn(o: ConnectInOptions): Promise<number> {
  const { pid, path, uid, gid, groups } = o;
  checkTarget('connectIn', pid, path, SOCKET_PATH_MAX);
  if (uid === undefined && gid === undefined && groups === undefined) {
    return native.connectIn(pid, path, null, null, null);
  }
  checkArgument(
    isUint(uid, ID_MAX) && isUint(gid, ID_MAX),
    'connectIn',
    path,
    pid,
    'uid and gid must both be given, integers < 2^32 - 1',
  );
  const groupList = groups ?? [];
  checkArgument(
    Array.isArray(groupList) && groupList.length <= GROUPS_MAX && groupList.every((g) => isUint(g, ID_MAX)),
    'connectIn',
    path,
    pid,
    'groups must be an array of at most 65536 gids',
  );
  return native.connectIn(pid, path, uid as number, gid as number, groupList);
}

/** Removes `path` only if it still is inode `ino`. false (nothing done) when it is absent or another inode. */
export async function unlinkIn(o: UnlinkInOptions): Promise<boolean> {
  const { pid, path, ino } = o;
  checkTarget('unlinkIn', pid, path, PATH_MAX);
  checkArgument(isUint(ino, Number.MAX_SAFE_INTEGER), 'unlinkIn', path, pid, 'ino must be an integer >= 0');
  return native.unlinkIn(pid, path, ino);
}

/** lstat inside the namespace (a symlink at `path` is described, not followed). Absent → rejects with ENOENT. */
export async function statIn(o: { pid: number; path: string }): Promise<NodeStat> {
  checkTarget('statIn', o.pid, o.path, PATH_MAX);
  return native.statIn(o.pid, o.path);
}

/**
 * Plants a device node at `path` with exactly the given mode and owner: parents (0755), mknod at a temporary
 * name, chown, chmod, rename over `path`. Refuses (EEXIST) when `path` exists and is not a device of that type.
 */
export async function mknodIn(o: MknodInOptions): Promise<{ ino: number; dev: number }> {
  const { pid, path, mode, major, minor, uid, gid, type = 'char' } = o;
  checkTarget('mknodIn', pid, path, PATH_MAX);
  const check = (ok: boolean, detail: string) => checkArgument(ok, 'mknodIn', path, pid, detail);
  check(type === 'char' || type === 'block', "type must be 'char' or 'block'");
  check(isUint(mode, 0o7777), 'mode must be permission bits');
  check(isUint(major, 4095), 'major must be an integer in [0, 4095]');
  check(isUint(minor, 1048575), 'minor must be an integer in [0, 1048575]');
  check(isUint(uid, ID_MAX), 'uid must be an integer < 2^32 - 1');
  check(isUint(gid, ID_MAX), 'gid must be an integer < 2^32 - 1');
  return native.mknodIn(pid, path, type === 'block', mode, major, minor, uid, gid);
}

/** Reads a regular file (symlinks followed inside the namespace). Over maxBytes → rejects with EFBIG. */
export async function readFileIn(o: ReadFileInOptions): Promise<Buffer> {
  const { pid, path, maxBytes } = o;
  checkTarget('readFileIn', pid, path, PATH_MAX);
  checkArgument(
    isUint(maxBytes, 2 ** 30),
    'readFileIn',
    path,
    pid,
    'maxBytes must be an integer in [0, 2^30]',
  );
  return native.readFileIn(pid, path, maxBytes);
}
