// Sockets made outside any namespace, for tests and benchmarks (the daemon listens and dials only through the
// namespace operations of native/namespace.ts).
import { FdSocket, type FdSocketOptions } from '../native/fd-socket.js';
import { fdio } from '../native/fdio.js';
import { closeFds } from '../native/fds.js';

/** A connected pair of FdSockets. */
export function socketPair(options: FdSocketOptions = {}): [FdSocket, FdSocket] {
  const [a, b] = fdio.socketPair();
  let first: FdSocket;
  try {
    first = new FdSocket(a, options);
  } catch (error) {
    closeFds([a, b]);
    throw error;
  }
  try {
    return [first, new FdSocket(b, options)];
  } catch (error) {
    first.destroy();
    closeFds([b]);
    throw error;
  }
}

/** A connected pair of raw socket fds (AF_UNIX, SOCK_STREAM, close-on-exec, non-blocking). */
export function socketPairFds(): [number, number] {
  return fdio.socketPair();
}

/** A listening Unix socket bound at path on the host (fails if path exists). */
export function listenFd(path: string, backlog = 511): number {
  return fdio.listenFd(path, backlog);
}
