// Typed errors that cross the wire. Each code maps to exactly one errno at the mount
// (src/fuse/errno.ts) and to a message + exit status at the CLI.

export const errorCodes = [
  'ENOENT', // no such file or directory
  'EEXIST', // name already exists
  'ENOTDIR', // a path component is not a directory
  'EISDIR', // a directory where a file was needed
  'ENOTEMPTY', // rmdir of a non-empty directory
  'EINVAL', // an argument out of range (bad offset, rename into itself, ...)
  'EACCES', // permission denied
  'EPERM', // operation not permitted
  'ENOSPC', // no chunkserver has room, or not enough chunkservers for a new chunk
  'EIO', // data could not be read or written on any replica
  'ETIMEDOUT', // a peer did not answer in time
  'EUNAVAIL', // a peer is not reachable (connection refused/closed); retried by clients
  'ESTALE', // a chunk version or lease moved on; the client refreshes and retries
  'ECHUNKFULL', // record append did not fit: the chunk was padded, retry on the next chunk
  'EFBIG', // file or record too large
  'ENAMETOOLONG',
  'EXDEV',
  'EPROTO', // malformed or unknown message
  'ENODATA', // no such extended attribute
  'ENOSYS', // not implemented
  'EAGAIN', // a lock is held by someone else
  'EINTR', // a wait for a lock was interrupted (the waiting process got a signal)
  'EDEADLK', // waiting for this lock would deadlock (POSIX record locks)
  'EOPNOTSUPP', // an extended attribute namespace gfs does not keep
  'ERANGE', // an extended attribute name or value too long
] as const;

export type ErrorCode = (typeof errorCodes)[number];

export class GfsError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'GfsError';
  }

  /**
   * An error that is an answer, not a fault (a peer's error reply, a name that is not there):
   * without a stack trace, whose capture cost ~30 us a time at the mount — once per new file for
   * the look-up before its create.
   */
  static answer(code: ErrorCode, message: string): GfsError {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return new GfsError(code, message);
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}

const codeSet = new Set<string>(errorCodes);
export const isErrorCode = (s: unknown): s is ErrorCode => typeof s === 'string' && codeSet.has(s);

/** Any thrown value as a GfsError (unknown failures become EIO, with their message kept). */
export function asGfsError(e: unknown): GfsError {
  if (e instanceof GfsError) return e;
  const err = e as { code?: string; message?: string } | undefined;
  if (err && err.code === 'ENOSPC') return new GfsError('ENOSPC', err.message ?? 'no space left');
  return new GfsError('EIO', err?.message ?? String(e));
}

/** Errors a client may retry after a pause (the peer may come back or the master may reassign). */
export const isRetryable = (e: GfsError): boolean =>
  e.code === 'ETIMEDOUT' || e.code === 'EUNAVAIL' || e.code === 'ESTALE' || e.code === 'EIO';
