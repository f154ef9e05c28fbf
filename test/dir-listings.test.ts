// Unit tests of DirListings: which look-ups a client may answer "no such name" by itself.

import { describe, expect, it, vi } from 'vitest';
import { DirListings } from '../src/client/dir-listings.js';

describe('DirListings', () => {
  it('knows the names of a listed or new directory, and follows this client’s changes', () => {
    const l = new DirListings(1000);
    expect(l.absent('/d/x')).toBe(false); // never listed: only the master knows
    l.set('/d', ['a', 'b']);
    expect(l.absent('/d/x')).toBe(true);
    expect(l.absent('/d/a')).toBe(false);
    l.added('/d/x');
    expect(l.absent('/d/x')).toBe(false);
    l.removed('/d/a');
    expect(l.absent('/d/a')).toBe(true);
    l.set('/d/sub', []); // made here: empty
    expect(l.absent('/d/sub/f')).toBe(true);
    l.removed('/d/sub'); // what was known beneath a removed name goes with it
    expect(l.absent('/d/sub/f')).toBe(false);
    l.forget('/d'); // a change that could not be followed
    expect(l.absent('/d/a')).toBe(false);
    l.set('/', ['d']);
    expect(l.absent('/e')).toBe(true);
    expect(l.absent('/')).toBe(false);
  });

  it('keeps a listing only as long as cached attributes', () => {
    vi.useFakeTimers();
    try {
      const l = new DirListings(1000);
      l.set('/d', []);
      vi.advanceTimersByTime(999);
      expect(l.absent('/d/x')).toBe(true);
      vi.advanceTimersByTime(2);
      expect(l.absent('/d/x')).toBe(false);
      const off = new DirListings(0); // attribute caching off: nothing is kept
      off.set('/d', []);
      expect(off.absent('/d/x')).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });
});
