// The simulator's Docker runtime and its base image, on an image of this test's own (so that removing it cannot
// disturb another test): Docker refuses to remove the image while any container refers to it, and a start that
// finds the image gone (removed between a caller's ensureImage() and its start, as another simulator's `down`
// may do) builds it again instead of failing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ContainerPlan, DockerRuntime } from '../../sim/runtime.js';

const INSTANCE = `e2e-image-${process.pid}`;
let runtime: DockerRuntime;

const plan = (name: string): ContainerPlan => ({
  instance: INSTANCE,
  name,
  command: ['/usr/bin/sleep', 'infinity'],
  mounts: [{ source: '/usr', target: '/usr', readOnly: true }],
  env: {},
});

beforeAll(async () => {
  runtime = await DockerRuntime.connect(`pvx-sim-base:test-${process.pid}`);
});

afterAll(async () => {
  for (const container of await runtime.list(INSTANCE)) await runtime.remove(container.id);
  await runtime.removeImage();
});

describe('the base image', () => {
  it('is not removed while a container refers to it, stopped or running', async () => {
    await runtime.ensureImage();
    const id = await runtime.start(plan('holder'));
    expect(await runtime.removeImage()).toBe(false);
    await runtime.stop(id);
    expect(await runtime.removeImage()).toBe(false);
    expect(await runtime.imageExists()).toBe(true);
    await runtime.remove(id);
    expect(await runtime.removeImage()).toBe(true);
    expect(await runtime.imageExists()).toBe(false);
  }, 60_000);

  it('a start that lost the image to a removal builds it again and starts', async () => {
    expect(await runtime.ensureImage()).toBe('built');
    // Another simulator's `down` removes the image right after our check…
    expect(await runtime.removeImage()).toBe(true);
    // …and our start still succeeds.
    const id = await runtime.start(plan('late'));
    expect(await runtime.pid(id)).toBeGreaterThan(0);
    expect(await runtime.imageExists()).toBe(true);
  }, 60_000);
});
