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
 * with the same opcode), and until the retry is answered:
 *  - A rename that arrives while the process is on its way to the retry waits before libfuse sees
 *    it. The walk looks the name up (a LOOKUP of ours), finds a different inode, and looks it up
 *    again under the directory's lock; a rename holds that lock while it waits here, so it must
 *    not wait for a process asleep in the kernel on something other than a request of ours: it
 *    goes first then, and the look-up finds the newest file, which is fine too. "On its way" is:
 *    its walk has begun (a LOOKUP answered) and it has a request of ours under way, or is
 *    runnable, or sleeps waiting for a request no thread of ours has read yet (/proc/PID/stat and
 *    /proc/PID/wchan; where the wait channel cannot be read, asleep GATE_ASLEEP_MS is not).
 *  - Its requests wait while a rename that went ahead is under way: a look-up served beside it
 *    finds the file the rename is about to replace.
 * Renames never wait while no retry is under way, and never longer than GATE_HOLD_MS (a process
 * can be runnable for another reason: its retry was answered from the kernel's cache).
 *
 * Before, a rename waited 20 ms at most and the second case was not covered: on two busy CPUs a
 * reader took longer than that from its look-up to its retry, or looked up beside a rename.
 *
 * A rename also waits for the opens under way, and opens that arrive after that wait for the
 * rename's answer. libfuse counts a handle only once our open has answered, and a rename over a
 * file it does not count as open unlinks the file instead of hiding it (.fuse_hidden): the open
 * then succeeds on a file whose path is gone, and the reader's fstat, which the kernel does not
 * retry, fails with ESTALE. Neither wait can deadlock: an open under way holds no lock a rename
 * needs, and a rename under way (past this gate) waits for nothing here.
 */
#ifndef GFS_RETRY_GATE_H
#define GFS_RETRY_GATE_H

#include <stdint.h>

/* How long a rename waits at most. */
#define GATE_HOLD_MS 500
/* Where a process's wait channel cannot be read: asleep this long is not on its way to a retry. */
#define GATE_ASLEEP_MS 2

/* A request (opcode) of pid arrived, before libfuse sees it. An open, and any request of a process
   on its way to a retry, first waits for the renames under way; an open then counts among the
   opens under way until gate_open_answered. 0: no retry of pid is under way; 1: one is (then
   gate_request_answered follows); 2: this request may be the retry itself (same opcode). */
int gate_request_begins (uint32_t pid, uint32_t opcode, int open);
/* What the answer to such a request tells: it was a LOOKUP (the walk to the retry has begun), the
   retry, something else, or there is no answer. */
enum gate_answer { GATE_LOOKUP, GATE_RETRY, GATE_OTHER, GATE_NO_ANSWER };
void gate_request_answered (uint32_t pid, enum gate_answer what);
void gate_open_answered (void);
/* A request (opcode) of pid was answered ESTALE: the kernel retries it. */
void gate_close (uint32_t pid, uint32_t opcode);
/* A rename of pid arrived: waits while a process is on its way to a retry, then for the opens
   under way (GATE_HOLD_MS at most in all); from then until gate_rename_answered, opens wait. */
void gate_rename_begins (uint32_t pid);
void gate_rename_answered (void);

#endif
