// The CI tally (.ci/tally.js) on a real vitest report: test/ci/fixtures holds one test of each outcome, run by a
// vitest of its own; the cases vitest cannot produce on purpose (no report at all, a failing exit with every test
// passed, a second stage) use small reports written here. A stage is named after its report file.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const TALLY = join(import.meta.dirname, '..', '..', '.ci', 'tally.js');
const VITEST = join(import.meta.dirname, '..', '..', 'node_modules', 'vitest', 'vitest.mjs');
const FIXTURES = join(import.meta.dirname, 'fixtures');

let work: string;
let fixtures: string;
let runs = 0;

interface Run {
  code: number;
  lines: string[];
}

function run(command: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { maxBuffer: 8 << 20 }, (error, stdout) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, lines: stdout.trim().split('\n') });
    });
  });
}

/** The tally over `reports` after the stages exited with `status`, against a floor file of these lines. */
function tally(status: number, reports: string[], floor: string[]): Promise<Run> {
  const floorFile = join(work, `floor-${++runs}`);
  writeFileSync(floorFile, ['# the fewest tests each stage must execute', ...floor, ''].join('\n'));
  return run(process.execPath, [TALLY, '--floor', floorFile, String(status), ...reports]);
}

/** `report` as the report of stage `stage`. */
function asStage(report: string, stage: string): string {
  const dir = join(work, `stage-${++runs}`);
  mkdirSync(dir);
  copyFileSync(report, join(dir, `${stage}.json`));
  return join(dir, `${stage}.json`);
}

/** A report of one file whose tests all passed, as stage `stage`. */
function passing(tests: number, stage = 'lts'): string {
  const path = join(work, 'passing.json');
  const assertionResults = Array.from({ length: tests }, (_, i) => ({
    ancestorTitles: [],
    title: `test ${i}`,
    status: 'passed',
    tags: [],
  }));
  writeFileSync(
    path,
    JSON.stringify({ testResults: [{ name: join(work, 'a.test.ts'), status: 'passed', assertionResults }] }),
  );
  return asStage(path, stage);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-tally-'));
  fixtures = join(work, 'fixtures.json');
  const vitest = await run(process.execPath, [
    VITEST,
    'run',
    '--root',
    FIXTURES,
    '--reporter=json',
    `--outputFile.json=${fixtures}`,
  ]);
  // The fixtures fail on purpose.
  expect(vitest.code).toBe(1);
}, 60_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the CI tally', () => {
  it('counts a failed test, tests skipped by a failing beforeAll, skip and todo, and a file that did not load', async () => {
    const { code, lines } = await tally(1, [asStage(fixtures, 'lts')], ['lts 6']);
    expect(code).toBe(1);
    expect(lines).toEqual(
      expect.arrayContaining([
        '  skipped: test/ci/fixtures/outcomes.fixture.ts > a suite whose set-up fails > is reported skipped, not failed',
        '  skipped: test/ci/fixtures/outcomes.fixture.ts > is skipped',
        '  todo: test/ci/fixtures/outcomes.fixture.ts > is still to write',
        'lts: test/ci/fixtures/unloadable.fixture.ts failed outside its tests: this file does not load',
        // 1 failed test + 3 that did not run + 1 file that did not load.
        'lts: 5 passed, 5 failed',
      ]),
    );
    expect(lines.at(-1)).toBe('5 passed, 5 failed (3 distinct: each shared-corpus case once)');
  });

  it('reports the same tagged cases run in two suites', async () => {
    const { lines } = await tally(1, [asStage(fixtures, 'lts')], ['lts 6']);
    expect(lines).toContain(
      'shared-corpus: 2 cases, each run in 2 suites (test/ci/fixtures/outcomes.fixture.ts > codec, ' +
        'test/ci/fixtures/outcomes.fixture.ts > mediator): 4 tests',
    );
  });

  it('fails a stage that executed fewer tests than its floor, or has no floor', async () => {
    const under = await tally(1, [asStage(fixtures, 'lts')], ['lts 7']);
    expect(under.code).toBe(1);
    expect(under.lines).toContainEqual(
      expect.stringMatching(/^lts: 6 tests executed, fewer than its floor of 7 in /),
    );
    expect(under.lines.at(-1)).toMatch(/^5 passed, 6 failed /);
    expect((await tally(0, [passing(3)], ['lts 4'])).lines.at(-1)).toBe('3 passed, 1 failed');
    const unnamed = await tally(0, [passing(3, 'other')], ['lts 3']);
    expect(unnamed.code).toBe(1);
    expect(unnamed.lines).toContainEqual(expect.stringMatching(/^other: no floor for this stage in /));
  });

  it('passes stages where every test passed, at or above their floors, and counts a test of two stages once', async () => {
    expect(await tally(0, [passing(4)], ['lts 4'])).toEqual({
      code: 0,
      lines: ['lts: 4 passed, 0 failed', '4 passed, 0 failed'],
    });
    expect(await tally(0, [passing(4), passing(4, 'oldest')], ['lts 4', 'oldest 4'])).toEqual({
      code: 0,
      lines: [
        'lts: 4 passed, 0 failed',
        'oldest: 4 passed, 0 failed (4 of them passed in an earlier stage too)',
        '8 passed, 0 failed (4 distinct: each test once across stages)',
      ],
    });
  });

  it('counts a failing exit with no failed test (typecheck, lint) or a stage without report as a failure', async () => {
    const failedExit = await tally(2, [passing(4)], ['lts 4']);
    expect(failedExit.code).toBe(1);
    expect(failedExit.lines.at(-1)).toBe('4 passed, 1 failed');
    const noReport = await tally(2, [passing(4), join(work, 'oldest.json')], ['lts 4', 'oldest 4']);
    expect(noReport.code).toBe(1);
    expect(noReport.lines).toContain(
      'oldest: no test report (the stage did not run, or vitest failed to start)',
    );
    expect(noReport.lines.at(-1)).toBe('4 passed, 1 failed');
  });

  it('refuses a floor file that is not lines of a stage and a whole number', async () => {
    for (const floor of [['lts'], ['lts 4 5'], ['lts four'], ['lts 4', 'lts 5']]) {
      expect((await tally(0, [passing(4)], floor)).code, floor.join('|')).toBe(1);
    }
  });
});
