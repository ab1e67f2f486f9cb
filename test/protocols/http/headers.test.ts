import { describe, expect, it } from 'vitest';
import { fieldNameKey, headerValues, RequestParser, stripFields } from '../../../protocols/http/index.js';

describe('header helpers', () => {
  it('finds values by case-insensitive name, in order', () => {
    const headers = [
      { name: 'Accept', value: 'a' },
      { name: 'X', value: '1' },
      { name: 'accept', value: 'b' },
    ];
    expect(headerValues(headers, 'ACCEPT')).toEqual(['a', 'b']);
    expect(headerValues(headers, 'missing')).toEqual([]);
  });

  it('folds case, _ and . into one key', () => {
    expect(['X-PV-Client', 'x_pv_client', 'X.Pv.CLIENT', 'x-PV_client'].map(fieldNameKey)).toEqual(
      Array(4).fill('x-pv-client'),
    );
    expect(fieldNameKey('X-PV-Clients')).not.toBe('x-pv-client');
  });

  it('strips the named fields and their look-alikes, keeping everything else in order', () => {
    const headers = [
      { name: 'Host', value: 'a' },
      { name: 'X-PV-Client', value: 'forged' },
      { name: 'x_pv_role', value: 'admin' },
      { name: 'X.PV.Client', value: 'forged' },
      { name: 'X-PV-Clients', value: 'kept' },
      { name: 'Accept', value: '*/*' },
    ];
    expect(stripFields(headers, ['X-PV-Client', 'X-PV-Role'])).toEqual([
      { name: 'Host', value: 'a' },
      { name: 'X-PV-Clients', value: 'kept' },
      { name: 'Accept', value: '*/*' },
    ]);
  });

  it('removes the named fields from Connection options, dropping a Connection left empty', () => {
    const headers = [
      { name: 'Connection', value: 'keep-alive, X-PV-Client,x_pv_role , Upgrade' },
      { name: 'connection', value: ' X-PV-Role ' },
    ];
    expect(stripFields(headers, ['X-PV-Client', 'X-PV-Role'])).toEqual([
      { name: 'Connection', value: 'keep-alive, Upgrade' },
    ]);
  });

  it('trims options padded with long runs of whitespace (a quadratic regular expression once took seconds here)', () => {
    const padded = `a,${'\t'.repeat(30_000)}b${' '.repeat(30_000)}`;
    const [head] = new RequestParser().push(
      Buffer.from(`GET / HTTP/1.1\r\nHost: h\r\nConnection: ${padded}\r\n\r\n`),
    );
    if (head?.kind !== 'head') throw new Error('the parser refused the request');
    expect(stripFields(head.head.headers, ['X-PV-Client'])).toEqual([
      { name: 'Host', value: 'h' },
      { name: 'Connection', value: 'a, b' },
    ]);
  });
});
