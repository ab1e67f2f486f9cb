import { describe, expect, it } from 'vitest';
import { createLogger } from '../../log/logger.js';

describe('logger', () => {
  it('writes one text line per event with quoted fields, filtered by level', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', format: 'text', write: (line) => lines.push(line) });
    log.debug('hidden');
    log.child({ consumer: 'app' }).warn('link failed', { error: 'no such file', retryInMs: 1000 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\S+Z WARN {2}link failed consumer=app error="no such file" retryInMs=1000$/);
  });

  it('writes JSON lines with the child fields', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', format: 'json', write: (line) => lines.push(line) });
    log.child({ link: 'echo' }).debug('reconciled', { created: 1 });
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      level: 'debug',
      event: 'reconciled',
      link: 'echo',
      created: 1,
    });
  });
});
