// docs/simulator.md's tutorial, run as written: every ```sh block between its <!-- tutorial --> markers, in order,
// in one shell with `set -e`, from the package root (the instance name gets this run's pid so that two runs on one
// machine cannot meet).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT, SIM_CLI } from '../../sim/paths.js';
import { DockerRuntime } from '../../sim/runtime.js';

const NAME = `mystack-${process.pid}`;
const work = mkdtempSync(join(tmpdir(), 'pvx-tutorial-'));

/** The tutorial's shell blocks, in order. */
function tutorialScript(): string {
  const doc = readFileSync(join(PACKAGE_ROOT, 'docs', 'simulator.md'), 'utf8');
  const start = doc.indexOf('<!-- tutorial -->');
  const end = doc.indexOf('<!-- /tutorial -->');
  expect(start).toBeGreaterThan(0);
  expect(end).toBeGreaterThan(start);
  const blocks = [...doc.slice(start, end).matchAll(/```sh\n([\s\S]*?)```/g)].map(
    (match) => match[1] as string,
  );
  expect(blocks.length).toBeGreaterThanOrEqual(5);
  return blocks.join('\n').replaceAll('mystack', NAME);
}

afterAll(async () => {
  await new Promise((resolve) =>
    execFile(process.execPath, [SIM_CLI, 'down', NAME, '--keep-images'], resolve),
  );
  rmSync(work, { recursive: true, force: true });
});

describe('the tutorial in docs/simulator.md', () => {
  it('runs as written: validate, graph, check, up, status, pvcontrol, down', async () => {
    const script = tutorialScript();
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        'sh',
        ['-e', '-c', `set -x\n${script}`],
        { cwd: PACKAGE_ROOT, env: { ...process.env, TMPDIR: work }, timeout: 240_000, maxBuffer: 8 << 20 },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stdout).toContain(`${NAME}: ok (2 containers, 1 links, 2 checks)`);
    expect(result.stdout).toContain('-->|"hello (unix)"|');
    expect(result.stdout).toMatch(new RegExp(`${NAME}: 2 passed, 0 failed in [0-9.]+ s`));
    expect(result.stdout).toMatch(/visitor +hello +unix +any +greeter +active/);
    expect(result.stderr).toMatch(/live page: http:\/\/127\.0\.0\.1:\d+\//);
    expect(await (await DockerRuntime.connect()).list(NAME)).toEqual([]);
  }, 300_000);
});
