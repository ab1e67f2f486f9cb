// Shrinking for inputs that a generator builds in one go (from a seed), where fast-check has no structure to
// shrink: the text itself shrinks, by deleting ever smaller slices of it, as delta debugging does.
import fc from 'fast-check';

function* deletions(text: string): Generator<string> {
  for (let size = Math.max(1, text.length >> 1); size >= 1; size >>= 1) {
    for (let at = 0; at + size <= text.length; at += size) yield text.slice(0, at) + text.slice(at + size);
  }
}

class DeletionShrinking extends fc.Arbitrary<string> {
  constructor(private readonly inner: fc.Arbitrary<string>) {
    super();
  }

  generate(random: fc.Random, biasFactor: number | undefined): fc.Value<string> {
    return new fc.Value(this.inner.generate(random, biasFactor).value, undefined);
  }

  canShrinkWithoutContext(value: unknown): value is string {
    return typeof value === 'string';
  }

  shrink(value: string): fc.Stream<fc.Value<string>> {
    return fc.stream(deletions(value)).map((text) => new fc.Value(text, undefined));
  }
}

/** `inner`'s strings, shrinking by deletion of slices (whatever shrinking `inner` had is replaced). */
export function shrinkByDeletion(inner: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return new DeletionShrinking(inner);
}
