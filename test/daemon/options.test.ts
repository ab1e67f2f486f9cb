import { describe, expect, it } from 'vitest';
import { parseCli, UsageError } from '../../daemon/options.js';

describe('parseCli', () => {
  it('has the contract defaults', () => {
    expect(parseCli([], {})).toEqual({
      ctrlSocket: '/run/pantavisor/pv/pv-ctrl',
      intervalMs: 5000,
      statusSocket: '/run/pv-xconnect/status.sock',
      logLevel: 'info',
      logFormat: 'text',
      help: false,
      version: false,
    });
  });

  it('takes environment variables, and flags over them', () => {
    const env = { PVX_CTRL_SOCKET: '/tmp/ctrl', PVX_INTERVAL: '0.25', PVX_STATUS_SOCKET: 'none' };
    expect(parseCli([], env)).toMatchObject({ ctrlSocket: '/tmp/ctrl', intervalMs: 250, statusSocket: null });
    expect(parseCli(['--interval', '2', '--ctrl-socket', '/x'], env)).toMatchObject({
      ctrlSocket: '/x',
      intervalMs: 2000,
    });
  });

  it.each([
    [['--bogus']],
    [['--interval', '0']],
    [['--interval', '-1']],
    [['--interval', 'soon']],
    [['--log-level', 'loud']],
    [['--log-format', 'xml']],
    [['--ctrl-socket', 'relative']],
    [['positional']],
  ])('refuses %j with a usage error', (argv) => {
    expect(() => parseCli(argv, {})).toThrow(UsageError);
  });
});
