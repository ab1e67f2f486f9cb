// Service-manager notification (the sd_notify protocol of systemd, also understood by other supervisors): one
// datagram such as "READY=1" to the AF_UNIX socket named by $NOTIFY_SOCKET, a path or "@abstract" name. Sent by the
// addon (native/src/notify.c): Node's dgram has no AF_UNIX datagram sockets.
import { binding } from './binding.js';

const native = binding as { notify(address: string, message: string): void };

/** Sends one notification; throws (code EAGAIN, ENOENT, ECONNREFUSED…) when it cannot be delivered. */
export function notifyServiceManager(address: string, message: string): void {
  native.notify(address, message);
}
