// Small files read through a Namespace: bounded (the native read refuses a file over the cap with EFBIG before
// reading it), with one way of saying what went wrong. Used for account files inside containers and for policy
// files on the host.
import type { Namespace } from './types.js';

/** /etc/passwd and /etc/group larger than this are refused rather than read. */
export const MAX_ACCOUNT_FILE_BYTES = 4 * 1024 * 1024;

/** A file that could not be read: `code` is the errno name (EFBIG: over the cap). */
export interface FileReadError extends Error {
  code: string;
}

/**
 * The text of the file at `path` inside `ns`, at most `maxBytes`. When `ifMissing` is given, a missing file reads
 * as that; any other failure is a FileReadError saying `cannot read <what>: <errno>`.
 */
export async function readTextFile(
  ns: Pick<Namespace, 'readFile'>,
  path: string,
  maxBytes: number,
  what: string,
  ifMissing?: string,
): Promise<string> {
  try {
    return (await ns.readFile(path, maxBytes)).toString('utf8');
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    if (code === 'ENOENT' && ifMissing !== undefined) return ifMissing;
    throw Object.assign(new Error(`cannot read ${what}: ${code ?? message}`), { code: code ?? 'EIO' });
  }
}

/** An end's /etc/passwd or /etc/group (`whose`: "provider" or "consumer"); a missing /etc/group has no groups. */
export function readAccountFile(
  ns: Pick<Namespace, 'readFile'>,
  path: '/etc/passwd' | '/etc/group',
  whose: 'provider' | 'consumer',
): Promise<string> {
  const ifMissing = path === '/etc/group' ? '' : undefined;
  return readTextFile(ns, path, MAX_ACCOUNT_FILE_BYTES, `the ${whose}'s ${path}`, ifMissing);
}
