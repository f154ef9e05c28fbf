/*
 * Renames held back while a process retries a look-up that a rename made fail.
 *
 * The high-level API finds files by path. A process that looked a name up just before a rename
 * replaced the file under it holds the old inode, whose path libfuse has dropped: its open or stat
 * fails, and the channel answers ESTALE (fuse-native.c, chan_send), on which the kernel walks the
 * path again and retries the request once. A file renamed over again and again (a writer that
 * publishes versions by rename, readers that cat it) could be renamed over a second time between
 * that new walk and the retried request, and the reader then saw "Stale file handle".
 *
 * So an ESTALE answer closes the gate for that process (the kernel retries on the same thread,
 * with the same opcode): a rename that arrives meanwhile waits before libfuse sees it, until the
 * retried request is answered or GATE_HOLD_MS have passed. The wait is bounded because a retry can
 * itself wait for the held rename (a look-up that needs the directory's lock, which the kernel
 * holds for the rename); the rename then goes first and the look-up finds the newest file, which
 * is fine too. Renames never wait while no retry is under way.
 *
 * A rename also waits for the opens that arrived before it. libfuse counts a handle only once our
 * open has answered, and a rename over a file it does not count as open unlinks the file instead
 * of hiding it (.fuse_hidden): the open then succeeds on a file whose path is gone, and the
 * reader's fstat, which the kernel does not retry, fails with ESTALE. (Opens that arrive while the
 * rename waits are not waited for, so readers in a loop cannot hold a rename back for long.)
 */
#ifndef GFS_RETRY_GATE_H
#define GFS_RETRY_GATE_H

#include <stdint.h>

/* How long a rename waits at most for a retry. */
#define GATE_HOLD_MS 20

/* A request (opcode) of pid was answered ESTALE: the kernel retries it. */
void gate_close (uint32_t pid, uint32_t opcode);
/* 1 if a request (opcode) of pid that arrived may be the kernel's retry (same process, same opcode). */
int gate_retrying (uint32_t pid, uint32_t opcode);
/* The retry of pid is answered (whatever the answer: the kernel retries once). */
void gate_open (uint32_t pid);
/* An open arrived: its slot (-1: none free), for gate_open_answered once it is answered. */
int gate_open_begins (void);
void gate_open_answered (int slot);
/* A rename arrived: wait while the gate is closed for any process, or an open that arrived before
   it is unanswered, for GATE_HOLD_MS at most. */
void gate_wait_before_rename (void);

#endif
