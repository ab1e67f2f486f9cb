// Helpers the targets share: running a codec step whose own error class is an expected refusal, and naming it.

/** Runs `step`: its value, or `{ refused: code }` when it throws `errorClass` (anything else is a finding). */
export function refusedOr<T, E extends Error & { code: string }>(
  errorClass: abstract new (...args: never[]) => E,
  step: () => T,
): T | { refused: string } {
  try {
    return step();
  } catch (error) {
    if (error instanceof errorClass) return { refused: error.code };
    throw error;
  }
}

export function isRefusal(value: unknown): value is { refused: string } {
  return typeof value === 'object' && value !== null && 'refused' in value;
}

/** A finding: the codec and an oracle disagree. */
export function disagree(what: string, details: Record<string, unknown>): never {
  throw new Error(`${what}\n${JSON.stringify(details, null, 1)}`);
}

/** Cuts `bytes` at offsets taken modulo its length + 1 (duplicates merge). */
export function cutAt(bytes: Buffer, offsets: readonly number[]): Buffer[] {
  const points = [...new Set(offsets.map((offset) => offset % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of [...points, bytes.length]) {
    if (point > from) chunks.push(bytes.subarray(from, point));
    from = point;
  }
  return chunks;
}

export const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');
