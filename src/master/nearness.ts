// Network distance between two hosts, from their addresses alone (the seeds' find_nearest): the
// same host is nearest, then hosts sharing more leading IPv4 octets (same /24, same /16, ...).
// Used to pick the replica a client or a copying chunkserver reads from, and among equally good
// targets for a new replica the one nearest its source.

/** The host part of "host:port", "[v6]:port", a ws:// URL or a bare host; IPv4-mapped v6 unwrapped. */
export function hostOf(address: string): string {
  let a = address.replace(/^ws:\/\//, '').replace(/\/.*$/, '');
  if (a.startsWith('[')) a = a.slice(1, a.indexOf(']'));
  else if ((a.match(/:/g) ?? []).length === 1) a = a.slice(0, a.lastIndexOf(':'));
  else if (/^[0-9a-f:.]+:\d+$/i.test(a) && a.includes('.')) a = a.slice(0, a.lastIndexOf(':')); // "::ffff:1.2.3.4:port"
  return a.replace(/^::ffff:/i, '').toLowerCase();
}

/** 0 for the same host, up to 4 for hosts that share nothing. */
export function nearness(a: string, b: string): number {
  const ha = hostOf(a);
  const hb = hostOf(b);
  if (ha === hb) return 0;
  const pa = ha.split('.');
  const pb = hb.split('.');
  if (pa.length !== 4 || pb.length !== 4) return 4;
  let common = 0;
  while (common < 3 && pa[common] === pb[common]) common++;
  return 4 - common;
}

/** addresses ordered nearest to `to` first (stable among equals). */
export function nearestFirst<T>(items: T[], addressOf: (t: T) => string, to: string): T[] {
  return items
    .map((t, i) => ({ t, i, d: nearness(addressOf(t), to) }))
    .sort((x, y) => x.d - y.d || x.i - y.i)
    .map((x) => x.t);
}
