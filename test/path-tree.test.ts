// Unit tests of PathMap: a Map keyed by paths that finds a subtree without scanning every key.

import { describe, expect, it } from 'vitest';
import { PathMap } from '../src/client/path-tree.js';

const sorted = (xs: string[]) => [...xs].sort();

describe('PathMap', () => {
  it('finds the keys at and beneath a path, also below directories that are not keys', () => {
    const m = new PathMap<number>();
    for (const [i, p] of ['/a', '/a/b/c', '/a/b/d', '/ab', '/x/y'].entries()) m.set(p, i);
    expect(sorted(m.under('/a'))).toEqual(['/a', '/a/b/c', '/a/b/d']); // not /ab
    expect(sorted(m.under('/a/b'))).toEqual(['/a/b/c', '/a/b/d']); // /a/b itself is no key
    expect(m.under('/x/y')).toEqual(['/x/y']);
    expect(m.under('/nothing')).toEqual([]);
    expect(sorted(m.under('/'))).toEqual(['/a', '/a/b/c', '/a/b/d', '/ab', '/x/y']);
    expect(m.get('/a/b/c')).toBe(1);
  });

  it('unlinks what a delete leaves empty, and keeps what still leads to a key', () => {
    const m = new PathMap<string>();
    m.set('/a', 'dir');
    m.set('/a/b/c', 'file');
    m.set('/a/b/d', 'file');
    m.delete('/a/b/c');
    expect(sorted(m.under('/a'))).toEqual(['/a', '/a/b/d']);
    m.delete('/a'); // /a still leads to /a/b/d
    expect(m.under('/a')).toEqual(['/a/b/d']);
    m.delete('/a/b/d');
    expect(m.under('/')).toEqual([]);
    expect(m.delete('/a/b/d')).toBe(false);
    // Set again after everything went: found again.
    m.set('/a/b/d', 'again');
    expect(m.under('/a')).toEqual(['/a/b/d']);
    m.set('/a/b/d', 'changed'); // a new value is no second link
    m.delete('/a/b/d');
    expect(m.under('/')).toEqual([]);
    m.set('/k', 'k');
    m.clear();
    expect(m.under('/')).toEqual([]);
    expect(m.size).toBe(0);
  });
});
