/*
 * READDIRPLUS for libfuse 2's high-level API, which knows only READDIR.
 *
 * Why: after a listing, `ls -l`, `find` and `du` look every entry up, one LOOKUP round trip
 * each. Answered in C from the listing (names-cache.h) a LOOKUP still costs a wake-up of the FUSE
 * worker and one of the caller, and on this machine kind (2 vCPUs halted when idle) that is
 * 6 us when both run on one CPU but ~30 us when the scheduler put them on two: `ls -lR` of 2,000
 * files ran at 11,000 or 37,000 entries/s on the same build, depending on where ls started. A
 * READDIRPLUS answer carries each entry's node id and attributes, so the kernel makes the
 * dentries and inodes itself and those lookups never happen.
 *
 * How: INIT tells the kernel we do READDIRPLUS (plus_init_flag). A READDIRPLUS read from the
 * device is handed to libfuse as the READDIR it extends (same body); libfuse's answer (dirents)
 * is turned into direntplus entries: for each entry that fits in the size the kernel asked for, a
 * LOOKUP of its name is put through libfuse on the same thread, as a request of our own whose
 * answer comes back to us (plus_capture) and never goes to the kernel. So libfuse makes its node
 * and counts the lookup exactly as for a kernel LOOKUP, and the kernel counts one for every entry
 * it links (it links every entry of an answer, even those past the caller's buffer). An entry
 * whose lookup fails goes with node id 0: the kernel then links nothing for it. "." and ".."
 * always go so. If the kernel does not take the answer (the request was interrupted), the
 * lookups are forgotten again (FORGET through libfuse), as libfuse does for a LOOKUP.
 *
 * Everything here is per thread: a worker serves one request at a time.
 */
#ifndef GFS_READDIR_PLUS_H
#define GFS_READDIR_PLUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Hands a request of our own (a whole request: header and body) to libfuse, on this thread. */
typedef void (*plus_process_fn) (void *ctx, const char *buf, size_t len);

/* The INIT flag to add to the answer when the kernel offered READDIRPLUS (init_in flags), else 0. */
uint32_t plus_init_flag (uint32_t offered);
/* A request just read from the device: a READDIRPLUS is rewritten into a READDIR and remembered. */
void plus_receive (char *buf, size_t len);
/* An answer libfuse sends: 1 if it answers one of our own lookups (then kept here, not to be
   sent); the caller applies its own rules to the answer first. */
int plus_is_own_answer (const struct iovec *iov, size_t count);
void plus_capture (const struct iovec *iov, size_t count);
/* An answer libfuse sends: if it is the READDIR answer to the remembered READDIRPLUS, builds the
   READDIRPLUS answer (header, entries) into out and returns 1; send that instead, then call
   plus_sent with the result. Errors and empty answers go as they are (0). */
int plus_build (const struct iovec *iov, size_t count, plus_process_fn process, void *ctx, struct iovec out[2]);
/* The built answer was sent (res 0) or not (-errno): frees it, forgets its lookups if not taken. */
void plus_sent (int res, plus_process_fn process, void *ctx);

#endif
