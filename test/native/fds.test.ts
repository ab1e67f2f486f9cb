// The fd helpers every layer shares: the quiet close of fd lists and the queue received fds wait in.
import { existsSync, openSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { closeFd, closeFds, FdQueue } from '../../native/fds.js';

const isOpen = (fd: number) => existsSync(`/proc/self/fd/${fd}`);
const openFds = (count: number) => Array.from({ length: count }, () => openSync('/dev/null', 'r'));

describe('closeFds', () => {
  it('closes every fd of the list and passes over those that are not open', () => {
    const [a, b] = openFds(2) as [number, number];
    closeFd(b);
    expect(() => closeFd(b)).toThrow(/EBADF/);
    expect(() => closeFds([b, a, -1])).not.toThrow();
    expect(isOpen(a)).toBe(false);
  });
});

describe('FdQueue', () => {
  it('hands fds out in arrival order and refuses to take more than it holds, taking none', () => {
    const queue = new FdQueue();
    queue.push([10, 11]);
    queue.push([]);
    queue.push([12]);
    expect(queue.take(2)).toEqual([10, 11]);
    expect(() => queue.take(2)).toThrow(/2 fds wanted, 1 queued/);
    expect(queue.length).toBe(1);
    expect(queue.take(1)).toEqual([12]);
    expect(queue.take(0)).toEqual([]);
    expect(queue.length).toBe(0);
  });

  it('keeps its order across many pushes while it is never empty', () => {
    const queue = new FdQueue();
    const taken: number[] = [];
    queue.push([0]);
    for (let fd = 1; fd < 5000; fd++) {
      queue.push([fd]);
      taken.push(...queue.take(1));
    }
    expect(taken).toEqual(Array.from({ length: 4999 }, (_, i) => i));
    expect(queue.take(1)).toEqual([4999]);
  });

  it('closes what it still holds, and only that', () => {
    const fds = openFds(3);
    const queue = new FdQueue();
    queue.push(fds);
    const [first] = queue.take(1) as [number];
    queue.close();
    expect(queue.length).toBe(0);
    expect(fds.map(isOpen)).toEqual([true, false, false]);
    closeFd(first);
  });
});
