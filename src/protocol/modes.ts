// Mode bits both sides agree on.

/**
 * The mode after a change that must drop set-id privileges (a chown; a write or truncate by a
 * caller without CAP_FSETID), as Linux does: set-user-ID goes, set-group-ID only if the group may
 * execute the file (otherwise it marks mandatory locking, not privilege).
 */
export const withoutSetId = (mode: number): number => mode & ~(0o4000 | ((mode & 0o2010) === 0o2010 ? 0o2000 : 0));
