/*
 * What /proc tells of a caller of the mount: runnable, asleep waiting for the answer to a FUSE
 * request, asleep on something else, or gone. Two users: renames waiting for a reader's retry
 * (retry-gate.h), and the mount telling a pause of its callers from a request the CPUs were too
 * busy for our threads to read yet (client/busy-hold.ts).
 */
#ifndef GFS_PROC_STATE_H
#define GFS_PROC_STATE_H

#include <stdint.h>

enum proc_state {
  PROC_GONE,
  PROC_RUNNABLE,
  /* Asleep in the kernel waiting for a FUSE request's answer (its wait channel says so). */
  PROC_ON_REQUEST,
  /* Asleep on something else. */
  PROC_ASLEEP,
  /* Asleep, and its wait channel cannot be read (another user's process, kernel settings). */
  PROC_ASLEEP_UNKNOWN,
};

enum proc_state proc_state_of (uint32_t pid);

#endif
