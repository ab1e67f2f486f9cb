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
      settings: { drm: { extraMajors: [], manageCgroup: true }, wayland: { policyFile: null } },
      help: false,
      version: false,
    });
    expect(parseCli(['--version'], {}).version).toBe(true);
  });

  it('reads the mediator settings from the environment', () => {
    const env = {
      PVX_WAYLAND_POLICY: '/etc/pv-xconnect/wayland.json',
      PVX_DRM_EXTRA_MAJORS: '1, 10',
      PVX_DRM_DEVICE_CGROUP: 'off',
    };
    expect(parseCli([], env).settings).toEqual({
      drm: { extraMajors: [1, 10], manageCgroup: false },
      wayland: { policyFile: '/etc/pv-xconnect/wayland.json' },
    });
  });

  it.each([
    [{ PVX_WAYLAND_POLICY: 'policy.json' }, /PVX_WAYLAND_POLICY: expected an absolute path/],
    [{ PVX_DRM_EXTRA_MAJORS: '1,x' }, /PVX_DRM_EXTRA_MAJORS: .* got 'x'/],
    [{ PVX_DRM_EXTRA_MAJORS: '5000' }, /PVX_DRM_EXTRA_MAJORS: .* got '5000'/],
    [{ PVX_DRM_DEVICE_CGROUP: 'Off' }, /PVX_DRM_DEVICE_CGROUP: expected on\|off/],
  ])('refuses the settings %j with a usage error naming the variable', (env, message) => {
    expect(() => parseCli([], env)).toThrow(UsageError);
    expect(() => parseCli([], env)).toThrow(message);
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
