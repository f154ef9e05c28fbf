// The one place where a gfs error becomes an errno at the mount.

import { asGfsError, type ErrorCode } from '../protocol/errors.js';

const errnoOf: Record<ErrorCode, number> = {
  ENOENT: 2,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  ENOTEMPTY: 39,
  EINVAL: 22,
  EACCES: 13,
  EPERM: 1,
  ENOSPC: 28,
  EIO: 5,
  ETIMEDOUT: 5, // a peer that never answers is an I/O error to programs, as on a dead disk
  EUNAVAIL: 5,
  ESTALE: 5, // internal: clients retry it; reaching the mount means retries ran out
  ECHUNKFULL: 5, // internal to record append
  EFBIG: 27,
  ENAMETOOLONG: 36,
  EXDEV: 18,
  EPROTO: 5,
  ENODATA: 61,
  ENOSYS: 38,
  EAGAIN: 11,
  EINTR: 4,
  EDEADLK: 35,
  EOPNOTSUPP: 95,
  ERANGE: 34,
};

/** A negative errno for libfuse, from anything thrown. */
export function toErrno(e: unknown): number {
  return -errnoOf[asGfsError(e).code];
}

/** Linux errno numbers the adapter uses directly. */
export const Errno = { EBADF: 9, ENOENT: 2, EINVAL: 22, EISDIR: 21 } as const;
