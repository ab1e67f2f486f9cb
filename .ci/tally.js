// The CI tally: reads the vitest JSON report of every test stage and the exit status of the stages, prints what did
// not run as it should and one last line "N passed, N failed" over all stages, and exits 1 unless every test ran and
// passed:
// - a skipped or todo test is a failure (nothing is meant to skip in CI; vitest also reports the tests of a suite
//   whose beforeAll failed as skipped);
// - a test file that failed without a failed test (it did not load, an afterAll failed) is one failure;
// - a failing exit with nothing counted as failed (typecheck, lint, a stage without report) is one failure;
// - a stage that executed fewer tests than its floor in .ci/test-floor is one failure.
// What is counted more than once is said: tests that ran in several stages (the same test on two Node versions),
// and tests that carry the same tag and title in several suites (the HTTP smuggling corpus through the codec and
// through the rest mediator). The last line ends with the count of distinct tests, each of those counted once.
//
// usage: node .ci/tally.js [--floor FILE] EXIT_STATUS REPORT.json...   (a stage is named after its report file)
import { readFileSync } from 'node:fs';
import { basename, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const floorPath =
  args[0] === '--floor' ? args.splice(0, 2)[1] : fileURLToPath(new URL('test-floor', import.meta.url));
const [exitStatus, ...reportPaths] = args;
const shown = (path) => relative(process.cwd(), path);

/** The report, or null when there is none (npm test stopped before vitest, or vitest crashed). */
function readReport(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

/** The floors by stage: lines `STAGE COUNT`, comment lines (#) aside. */
function readFloors(path) {
  const floors = new Map();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    const [stage, count, ...rest] = line.trim().split(/\s+/);
    if (!/^\d+$/.test(count ?? '') || rest.length > 0 || floors.has(stage))
      throw new Error(`${shown(path)}: expected lines "STAGE COUNT", found ${JSON.stringify(line)}`);
    floors.set(stage, Number(count));
  }
  return floors;
}

const floors = readFloors(floorPath);
const problems = [];
const stageLines = [];
const passedKeys = new Map(); // each distinct passed test, by its key
let passedTotal = 0;
let failures = 0;

for (const path of reportPaths) {
  const stage = basename(path, '.json');
  const report = readReport(path);
  const files = report?.testResults ?? [];
  const named = (test) => [test.file, ...test.ancestorTitles, test.title].join(' > ');
  // A test is known by its name and, should two share one, which of them it is.
  const seen = new Map();
  const tests = files.flatMap((file) =>
    file.assertionResults.map((result) => {
      const test = { ...result, file: shown(file.name) };
      const occurrence = (seen.get(named(test)) ?? 0) + 1;
      seen.set(named(test), occurrence);
      return { ...test, key: `${named(test)} #${occurrence}` };
    }),
  );
  const passed = tests.filter((test) => test.status === 'passed');
  const failed = tests.filter((test) => test.status === 'failed');
  const notRun = tests.filter((test) => !['passed', 'failed'].includes(test.status));
  const brokenFiles = files.filter(
    (file) => file.status === 'failed' && !file.assertionResults.some((test) => test.status === 'failed'),
  );
  if (notRun.length > 0) {
    problems.push(
      `${stage}: ${notRun.length} test(s) skipped or todo, counted as failed (in CI every test runs; a failing ` +
        'beforeAll skips its tests):',
      ...notRun.map((test) => `  ${test.status}: ${named(test)}`),
    );
  }
  for (const file of brokenFiles)
    problems.push(`${stage}: ${shown(file.name)} failed outside its tests: ${file.message || 'see above'}`);
  let stageFailures = failed.length + notRun.length + brokenFiles.length;
  const executed = passed.length + failed.length;
  const floor = floors.get(stage);
  if (report === null) {
    problems.push(`${stage}: no test report (the stage did not run, or vitest failed to start)`);
    stageFailures += 1;
  } else if (floor === undefined) {
    problems.push(`${stage}: no floor for this stage in ${shown(floorPath)}`);
    stageFailures += 1;
  } else if (executed < floor) {
    problems.push(
      `${stage}: ${executed} tests executed, fewer than its floor of ${floor} in ${shown(floorPath)} ` +
        '(README.md: the tally)',
    );
    stageFailures += 1;
  }
  const again = passed.filter((test) => passedKeys.has(test.key)).length;
  stageLines.push(
    `${stage}: ${passed.length} passed, ${stageFailures} failed` +
      (again > 0 ? ` (${again} of them passed in an earlier stage too)` : ''),
  );
  for (const test of passed) if (!passedKeys.has(test.key)) passedKeys.set(test.key, test);
  passedTotal += passed.length;
  failures += stageFailures;
}
if (exitStatus !== '0' && failures === 0) {
  problems.push(
    `the test stages exited ${exitStatus} with no test failed (typecheck, lint or an error outside tests)`,
  );
  failures = 1;
}

// Cases run in several suites: the same title under the same tag in more than one suite, each counted once.
const distinct = [...passedKeys.values()];
let repeated = 0;
const repeatedTags = [];
for (const tag of new Set(distinct.flatMap((test) => test.tags ?? []))) {
  const tagged = distinct.filter((test) => test.tags?.includes(tag));
  const suites = new Set(tagged.map((test) => [test.file, ...test.ancestorTitles].join(' > ')));
  const cases = new Set(tagged.map((test) => test.title));
  if (suites.size < 2 || cases.size === tagged.length) continue;
  repeated += tagged.length - cases.size;
  repeatedTags.push(tag);
  stageLines.push(
    `${tag}: ${cases.size} cases, each run in ${suites.size} suites (${[...suites].join(', ')}): ${tagged.length} tests`,
  );
}

for (const line of [...stageLines, ...problems]) console.log(line);
const once = [
  ...(passedTotal > distinct.length ? ['each test once across stages'] : []),
  ...repeatedTags.map((tag) => `each ${tag} case once`),
];
const distinctLine = once.length > 0 ? ` (${distinct.length - repeated} distinct: ${once.join(', ')})` : '';
console.log(`${passedTotal} passed, ${failures} failed${distinctLine}`);
process.exitCode = failures > 0 ? 1 : 0;
