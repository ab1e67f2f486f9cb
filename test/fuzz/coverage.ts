// V8 coverage of the code under fuzz, through c8: the runs write raw V8 coverage (NODE_V8_COVERAGE) into a folder,
// and this reads it back, source-mapped to the TypeScript files a target names.
import { createRequire } from 'node:module';
import { REPO_ROOT } from './paths.js';

export interface FileCoverage {
  file: string;
  lines: { covered: number; total: number };
  branches: { covered: number; total: number };
  uncoveredLines: number[];
}

export interface Coverage {
  lines: { covered: number; total: number };
  branches: { covered: number; total: number };
  files: FileCoverage[];
}

interface IstanbulSummary {
  lines: { covered: number; total: number };
  branches: { covered: number; total: number };
}
interface IstanbulFile {
  toSummary(): IstanbulSummary;
  getUncoveredLines(): (number | string)[];
}
interface IstanbulMap {
  files(): string[];
  fileCoverageFor(file: string): IstanbulFile;
}

const require = createRequire(import.meta.url);
const { Report } = require('c8') as {
  Report: new (
    options: Record<string, unknown>,
  ) => { getCoverageMapFromAllCoverageFiles(): Promise<IstanbulMap> };
};

export async function readCoverage(directory: string, sources: readonly string[]): Promise<Coverage> {
  const report = new Report({
    tempDirectory: directory,
    include: sources,
    excludeAfterRemap: true,
    excludeNodeModules: true,
    reporter: [],
    src: [REPO_ROOT],
  });
  const map = await report.getCoverageMapFromAllCoverageFiles();
  const total: Coverage = { lines: { covered: 0, total: 0 }, branches: { covered: 0, total: 0 }, files: [] };
  for (const file of map.files()) {
    const coverage = map.fileCoverageFor(file);
    const summary = coverage.toSummary();
    const entry: FileCoverage = {
      file: file.startsWith(REPO_ROOT) ? file.slice(REPO_ROOT.length + 1) : file,
      lines: { covered: summary.lines.covered, total: summary.lines.total },
      branches: { covered: summary.branches.covered, total: summary.branches.total },
      uncoveredLines: coverage.getUncoveredLines().map(Number),
    };
    total.files.push(entry);
    for (const key of ['lines', 'branches'] as const) {
      total[key].covered += entry[key].covered;
      total[key].total += entry[key].total;
    }
  }
  return total;
}

export function percent({ covered, total }: { covered: number; total: number }): string {
  return total === 0 ? 'n/a' : `${((100 * covered) / total).toFixed(1)}%`;
}
