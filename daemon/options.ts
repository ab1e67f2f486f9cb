// The command line of pv-xconnect (docs/daemon.md): flags, environment variables, defaults, and the mediators'
// settings, read here once and handed to the daemon.
import { parseArgs } from 'node:util';
import { LEVELS, type Level, type LogFormat } from '../log/logger.js';
import type { MediatorSettings } from '../mediators/registry.js';

export interface CliOptions {
  ctrlSocket: string;
  intervalMs: number;
  statusSocket: string | null;
  logLevel: Level;
  logFormat: LogFormat;
  settings: MediatorSettings;
  help: boolean;
  version: boolean;
}

export const USAGE = `Usage: pv-xconnect [options]

Connects Pantavisor containers as the xconnect-graph served by pv-ctrl says.

Options:
  --ctrl-socket PATH     pv-ctrl socket (env PVX_CTRL_SOCKET)       default /run/pantavisor/pv/pv-ctrl
  --interval SECONDS     poll interval, decimals allowed (env PVX_INTERVAL)   default 5
  --status-socket PATH   status API socket, "none" disables (env PVX_STATUS_SOCKET)
                                                                    default /run/pv-xconnect/status.sock
  --log-level LEVEL      debug|info|warn|error (env PVX_LOG_LEVEL)  default info
  --log-format FORMAT    text|json (env PVX_LOG_FORMAT)             default text
  --version              print the version
  -h, --help             show this help

Environment only:
  PVX_WAYLAND_POLICY     absolute path of the wayland role policy (JSON), read when a link is added;
                         unset: the built-in policy
  PVX_DRM_EXTRA_MAJORS   device majors accepted for drm links besides DRM's 226, comma-separated
                         (stand-in devices in tests)
  PVX_DRM_DEVICE_CGROUP  on|off: grant drm nodes in the consumer's device cgroup (v1)  default on

With NOTIFY_SOCKET set (systemd Type=notify, or any supervisor speaking that protocol), READY=1 is sent once the
first graph has been applied, and STOPPING=1 when shutting down.

Signals: SIGTERM/SIGINT remove what was planted and exit; SIGHUP polls pv-ctrl now.
`;

export class UsageError extends Error {
  override name = 'UsageError';
}

export function parseCli(argv: string[], env: NodeJS.ProcessEnv): CliOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'ctrl-socket': { type: 'string' },
        interval: { type: 'string' },
        'status-socket': { type: 'string' },
        'log-level': { type: 'string' },
        'log-format': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const pick = (flag: string, variable: string, fallback: string): string => {
    const value = values[flag] ?? env[variable] ?? fallback;
    return String(value);
  };

  const ctrlSocket = pick('ctrl-socket', 'PVX_CTRL_SOCKET', '/run/pantavisor/pv/pv-ctrl');
  const intervalText = pick('interval', 'PVX_INTERVAL', '5');
  const interval = Number(intervalText);
  if (!/^\d+(\.\d+)?$|^\.\d+$/.test(intervalText.trim()) || !(interval > 0) || interval > 86_400) {
    throw new UsageError(`--interval: expected a number of seconds > 0, got '${intervalText}'`);
  }
  const statusSocket = pick('status-socket', 'PVX_STATUS_SOCKET', '/run/pv-xconnect/status.sock');
  const logLevel = pick('log-level', 'PVX_LOG_LEVEL', 'info');
  if (!(LEVELS as readonly string[]).includes(logLevel)) {
    throw new UsageError(`--log-level: expected one of ${LEVELS.join('|')}, got '${logLevel}'`);
  }
  const logFormat = pick('log-format', 'PVX_LOG_FORMAT', 'text');
  if (logFormat !== 'text' && logFormat !== 'json') {
    throw new UsageError(`--log-format: expected text|json, got '${logFormat}'`);
  }
  for (const [flag, path] of [
    ['--ctrl-socket', ctrlSocket],
    ['--status-socket', statusSocket],
  ] as const) {
    if (path !== 'none' && !path.startsWith('/')) throw new UsageError(`${flag}: expected an absolute path`);
  }
  if (ctrlSocket === 'none') throw new UsageError('--ctrl-socket: expected an absolute path');

  return {
    ctrlSocket,
    intervalMs: Math.round(interval * 1000),
    statusSocket: statusSocket === 'none' ? null : statusSocket,
    logLevel: logLevel as Level,
    logFormat,
    settings: mediatorSettings(env),
    help: values.help === true,
    version: values.version === true,
  };
}

function mediatorSettings(env: NodeJS.ProcessEnv): MediatorSettings {
  const policyFile = env.PVX_WAYLAND_POLICY || null;
  if (policyFile !== null && !policyFile.startsWith('/'))
    throw new UsageError(`PVX_WAYLAND_POLICY: expected an absolute path, got '${policyFile}'`);
  const extraMajors = (env.PVX_DRM_EXTRA_MAJORS ?? '')
    .split(',')
    .map((text) => text.trim())
    .filter(Boolean)
    .map((text) => {
      if (!/^\d{1,4}$/.test(text) || Number(text) > 4095)
        throw new UsageError(
          `PVX_DRM_EXTRA_MAJORS: expected device majors (0-4095) separated by commas, got '${text}'`,
        );
      return Number(text);
    });
  const cgroup = env.PVX_DRM_DEVICE_CGROUP ?? 'on';
  if (cgroup !== 'on' && cgroup !== 'off')
    throw new UsageError(`PVX_DRM_DEVICE_CGROUP: expected on|off, got '${cgroup}'`);
  return { drm: { extraMajors, manageCgroup: cgroup === 'on' }, wayland: { policyFile } };
}
