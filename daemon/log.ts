// One line per event, as text or JSON, filtered by level. Written to stderr so stdout stays free for tools.
import type { Fields, Logger } from '../mediators/types.js';

export const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LEVELS)[number];
export type LogFormat = 'text' | 'json';
export type { Fields, Logger };

export function createLogger(
  options: { level: Level; format: LogFormat; write?: (line: string) => void },
  base: Fields = {},
): Logger {
  const minimum = LEVELS.indexOf(options.level);
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const emit = (level: Level, event: string, fields?: Fields) => {
    if (LEVELS.indexOf(level) < minimum) return;
    const all = { ...base, ...fields };
    const time = new Date().toISOString();
    write(
      options.format === 'json'
        ? JSON.stringify({ time, level, event, ...all })
        : textLine(time, level, event, all),
    );
  };
  return {
    debug: (event, fields) => emit('debug', event, fields),
    info: (event, fields) => emit('info', event, fields),
    warn: (event, fields) => emit('warn', event, fields),
    error: (event, fields) => emit('error', event, fields),
    child: (fields) => createLogger(options, { ...base, ...fields }),
  };
}

function textLine(time: string, level: Level, event: string, fields: Fields): string {
  let line = `${time} ${level.toUpperCase().padEnd(5)} ${event}`;
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    line += ` ${key}=${/[\s"=]/.test(text) || text === '' ? JSON.stringify(text) : text}`;
  }
  return line;
}

/** A logger that drops everything, for tests and tools. */
export const silentLogger: Logger = createLogger({ level: 'error', format: 'text', write: () => {} });
