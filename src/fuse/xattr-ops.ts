// Extended attributes at the mount, kept by the master (src/master/xattrs.ts). The kernel checks
// the permissions before these are called; the binding answers size queries and ERANGE.

import type { GfsClient } from '../client/client.js';
import { toErrno } from './errno.js';
import type { FuseOps } from './native/api.js';

const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;
const EOPNOTSUPP = 95;
/**
 * The kernel asks for this one before every write(2) (to drop file capabilities), so the binding
 * answers "none" without a round trip; storing one would make the two disagree, so it is refused.
 */
const CAPABILITY = 'security.capability';

export function xattrOps(client: GfsClient): Pick<FuseOps, 'setxattr' | 'getxattr' | 'listxattr' | 'removexattr'> {
  const done = (cb: (r: number) => void) => [() => cb(0), (e: unknown) => cb(toErrno(e))] as const;
  return {
    setxattr: (path, name, value, flags, cb) => {
      if (name === CAPABILITY) return cb(-EOPNOTSUPP);
      const only = flags & XATTR_CREATE ? 'create' : flags & XATTR_REPLACE ? 'replace' : undefined;
      client.call('setxattr', { path, name, value, ...(only ? { only } : {}) }).then(...done(cb));
    },
    getxattr: (path, name, cb) => {
      client.call('getxattr', { path, name }).then(
        ({ value }) => cb(0, Buffer.from(value)),
        (e) => cb(toErrno(e)),
      );
    },
    listxattr: (path, cb) => {
      client.call('listxattr', { path }).then(
        ({ names }) => cb(0, names),
        (e) => cb(toErrno(e)),
      );
    },
    removexattr: (path, name, cb) => {
      client.call('removexattr', { path, name }).then(...done(cb));
    },
  };
}
