// Extended attributes at the mount, kept by the master (src/master/xattrs.ts). The kernel checks
// the permissions before these are called; the binding answers size queries and ERANGE.

import type { GfsClient } from '../client/client.js';
import { GfsError } from '../protocol/errors.js';
import { toErrno } from './errno.js';
import type { FuseOps } from './native/api.js';

const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;
const EOPNOTSUPP = 95;
/**
 * The binding answers EOPNOTSUPP for these without a round trip (the kernel asks for the capability
 * before every write(2), `ls -l` for the ACLs and SELinux label of every entry, and stops asking
 * for the device once told "unsupported"); storing one would make the two disagree, so they are
 * refused the same way — as on a file system without ACL or SELinux support.
 * Keep in step with never_stored[] in native/fuse-native.c.
 */
const NEVER_STORED = new Set(['security.capability', 'security.selinux', 'system.posix_acl_access', 'system.posix_acl_default']);

export function xattrOps(client: GfsClient): Pick<FuseOps, 'setxattr' | 'getxattr' | 'listxattr' | 'removexattr'> {
  const done = (cb: (r: number) => void) => [() => cb(0), (e: unknown) => cb(toErrno(e))] as const;
  return {
    setxattr: (path, name, value, flags, cb) => {
      if (NEVER_STORED.has(name)) return cb(-EOPNOTSUPP);
      const only = flags & XATTR_CREATE ? 'create' : flags & XATTR_REPLACE ? 'replace' : undefined;
      client
        .call('setxattr', { path, name, value, ...(only ? { only } : {}) })
        .finally(() => client.forgetAttrs(path))
        .then(...done(cb));
    },
    // `ls -l` asks for ACLs and security labels of every entry: an inode whose (cached) attributes
    // say it has no extended attributes is answered here, without a master round trip.
    getxattr: (path, name, cb) => {
      client
        .lookup(path)
        .then((a) => (a.xattrs ? client.call('getxattr', { path, name }) : Promise.reject(new GfsError('ENODATA', `no attribute ${name}`))))
        .then(
          ({ value }) => cb(0, Buffer.from(value)),
          (e) => cb(toErrno(e)),
        );
    },
    listxattr: (path, cb) => {
      client
        .lookup(path)
        .then((a) => (a.xattrs ? client.call('listxattr', { path }) : { names: [] }))
        .then(
          ({ names }) => cb(0, names),
          (e) => cb(toErrno(e)),
        );
    },
    removexattr: (path, name, cb) => {
      client.call('removexattr', { path, name }).finally(() => client.forgetAttrs(path)).then(...done(cb));
    },
  };
}
