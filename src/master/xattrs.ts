// Extended attributes at the master: kept on the inode, changed through the op log like every
// other attribute. The kernel has already checked permissions (default_permissions: read access
// to get, write access or ownership to set user.*, CAP_SYS_ADMIN for trusted.*).

import { GfsError } from '../protocol/errors.js';
import type { MasterApi } from '../protocol/messages.js';
import type { Handlers } from '../protocol/rpc.js';
import type { Inode, Namespace } from './namespace.js';
import { nowTimespec, type NsOp } from './ops.js';

/** Linux's limits (XATTR_NAME_MAX, XATTR_SIZE_MAX). */
const NAME_MAX = 255;
const VALUE_MAX = 65536;
/** Namespaces kept; system.* (ACLs) is not: the mount does not enable POSIX ACLs. */
const NAMESPACES = ['user.', 'trusted.', 'security.'];

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) throw new GfsError('EINVAL', 'attribute name required');
  if (Buffer.byteLength(name) > NAME_MAX) throw new GfsError('ERANGE', `attribute name over ${NAME_MAX} bytes`);
  if (!NAMESPACES.some((p) => name.startsWith(p) && name.length > p.length)) throw new GfsError('EOPNOTSUPP', `attribute namespace of ${name} not supported`);
  return name;
}

export function xattrHandlers(ns: Namespace, mutate: (op: NsOp) => Promise<Inode | undefined>): Pick<Handlers<MasterApi>, 'setxattr' | 'getxattr' | 'listxattr' | 'removexattr'> {
  return {
    setxattr: async ({ path, name, value, only }) => {
      const n = checkName(name);
      if (!(value instanceof Uint8Array)) throw new GfsError('EINVAL', 'attribute value must be bytes');
      if (value.length > VALUE_MAX) throw new GfsError('ERANGE', `attribute value over ${VALUE_MAX} bytes`);
      const ino = ns.resolve(path).ino;
      await mutate({ t: 'setxattr', ino, name: n, value: Buffer.from(value), ...(only === 'create' || only === 'replace' ? { only } : {}), time: nowTimespec() });
      return {};
    },
    getxattr: ({ path, name }) => {
      const node = ns.resolve(path);
      const value = node.xattrs && typeof name === 'string' && Object.hasOwn(node.xattrs, name) ? node.xattrs[name] : undefined;
      if (!value) throw new GfsError('ENODATA', `no attribute ${String(name)}`);
      return { value };
    },
    listxattr: ({ path }) => ({ names: Object.keys(ns.resolve(path).xattrs ?? {}) }),
    removexattr: async ({ path, name }) => {
      await mutate({ t: 'removexattr', ino: ns.resolve(path).ino, name: checkName(name), time: nowTimespec() });
      return {};
    },
  };
}
