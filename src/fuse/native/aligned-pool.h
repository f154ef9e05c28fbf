/*
 * Page-aligned buffers for the client's O_DIRECT reads of replica files (client/local-reads.ts)
 * and for the large buffers its writes gather in (GfsClient.writeBuffer), kept for reuse once JS
 * has dropped them.
 *
 * Why: O_DIRECT wants an aligned buffer, which Node cannot allocate, and a buffer freshly mapped
 * is faulted in (and zeroed) page by page as the kernel pins it for the read. perf over a cold
 * 1 GiB `dd` from a mount: do_anonymous_page and its kin were ~20% of the mount's CPU, a fault
 * and a zeroed page for every 4 KiB read, since each buffer was new memory. A block handed back
 * by its finalizer (the garbage collector dropped every view of it) is kept here and handed out
 * again with its pages still mapped: no fault, no zeroing. Write buffers gain the same: a 1 GiB
 * `dd` into a mount faulted ~80K pages in the mount, ~29K with them from here.
 *
 * Blocks come in power-of-two sizes from ALIGNED_POOL_MIN_BYTES to ALIGNED_POOL_MAX_BYTES; at
 * most ALIGNED_POOL_KEEP_BYTES of free blocks are kept (a mount's resident memory grows by at
 * most that after large reads), the rest are freed.
 */
#ifndef GFS_ALIGNED_POOL_H
#define GFS_ALIGNED_POOL_H

#include <stddef.h>
#include <stdint.h>

#define ALIGNED_POOL_ALIGN 4096
#define ALIGNED_POOL_MIN_BYTES (256 * 1024)
#define ALIGNED_POOL_CLASSES 7 /* 256 KiB .. 16 MiB */
#define ALIGNED_POOL_MAX_BYTES ((size_t)ALIGNED_POOL_MIN_BYTES << (ALIGNED_POOL_CLASSES - 1))
#define ALIGNED_POOL_KEEP_BYTES ((size_t)96 * 1024 * 1024)

/* A block of at least bytes (its size in *capacity), ALIGNED_POOL_ALIGN-aligned; NULL when bytes
   is over ALIGNED_POOL_MAX_BYTES or memory ran out. Any thread. */
void *aligned_pool_take (size_t bytes, size_t *capacity);
/* Gives back a block aligned_pool_take handed out (kept for reuse, or freed). Any thread. */
void aligned_pool_give (void *mem, size_t capacity);
/* Blocks handed out again, blocks newly made, bytes of free blocks kept. */
void aligned_pool_counts (uint64_t *reused, uint64_t *made, size_t *kept);

#endif
