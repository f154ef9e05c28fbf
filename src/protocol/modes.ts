// Mode bits, and the rule for names, both sides agree on.

import type { FileType } from './messages.js';

/** st_mode's file type bits. */
export const typeBits: Record<FileType, number> = { dir: 0o040000, file: 0o100000, symlink: 0o120000 };

/** The longest name a directory takes, in bytes of UTF-8 (Linux's NAME_MAX). */
const NAME_MAX = 255;

/** name is longer than a directory takes (ENAMETOOLONG). */
export const nameTooLong = (name: string): boolean =>
  // A UTF-16 code unit is at most 3 bytes of UTF-8: only long names need counting (replay of a
  // million creates spent a fifth of its time here).
  name.length * 3 > NAME_MAX && Buffer.byteLength(name) > NAME_MAX;

/**
 * The mode after a change that must drop set-id privileges (a chown; a write or truncate by a
 * caller without CAP_FSETID), as Linux does: set-user-ID goes, set-group-ID only if the group may
 * execute the file (otherwise it marks mandatory locking, not privilege).
 */
export const withoutSetId = (mode: number): number => mode & ~(0o4000 | ((mode & 0o2010) === 0o2010 ? 0o2000 : 0));
