// Structured logging for every layer: one line per event, as text or JSON, filtered by level. Written to stderr so
// stdout stays free for tools.

export type Fields = Record<string, unknown>;

/** What mediators and the daemon log through; the daemon creates the one logger (createLogger) and hands it down. */
export interface Logger {
  debug(event: string, fields?: Fields): void;
  info(event: string, fields?: Fields): void;
  warn(event: string, fields?: Fields): void;
  error(event: string, fields?: Fields): void;
  /** A logger that adds these fields to every line. */
  child(fields: Fields): Logger;
}

export const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LEVELS)[number];
export type LogFormat = 'text' | 'json';

interface LogSettings {
  minimum: number;
  format: LogFormat;
  write: (line: string) => void;
}

// A class, not closures: every link holds a child logger, so children must be small.
class LineLogger implements Logger {
  constructor(
    private readonly settings: LogSettings,
    private readonly base: Fields,
  ) {}

  debug(event: string, fields?: Fields) {
    this.emit('debug', event, fields);
  }
  info(event: string, fields?: Fields) {
    this.emit('info', event, fields);
  }
  warn(event: string, fields?: Fields) {
    this.emit('warn', event, fields);
  }
  error(event: string, fields?: Fields) {
    this.emit('error', event, fields);
  }
  child(fields: Fields): Logger {
    return new LineLogger(this.settings, { ...this.base, ...fields });
  }

  private emit(level: Level, event: string, fields?: Fields) {
    if (LEVELS.indexOf(level) < this.settings.minimum) return;
    const all = { ...this.base, ...fields };
    const time = new Date().toISOString();
    this.settings.write(
      this.settings.format === 'json'
        ? JSON.stringify({ time, level, event, ...all })
        : textLine(time, level, event, all),
    );
  }
}

export function createLogger(options: {
  level: Level;
  format: LogFormat;
  write?: (line: string) => void;
}): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  return new LineLogger({ minimum: LEVELS.indexOf(options.level), format: options.format, write }, {});
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
