/*
 * Bytes put into the kernel's page cache of a file ahead of the reads that would ask for them
 * (FUSE_NOTIFY_STORE), written by the FUSE worker thread right after it has answered a read.
 *
 * Why: a 4 KiB random read costs a FUSE round trip plus a chunkserver round trip (~400 us here),
 * and the chunkserver answers 64 KiB nearly as fast as 4 KiB; a sequential reader makes one FUSE
 * request per 128 KiB. The client fetches whole blocks and windows anyway; storing what it fetched
 * lets the kernel serve the neighbouring pages itself, with no request at all.
 *
 * Why it is safe: the JS side only stores bytes of a file that no handle of this mount has open
 * for writing, fetched after the last write or truncate through this mount. A store already
 * decided when an open or truncate of the same kernel inode is answered could still land after
 * it (stale pages past a truncate, or past the page-cache drop of the next open, which is how
 * close-to-open reaches the kernel's cache): those requests wait (page_store_wait) until the
 * inode's stores are done. The write runs on a worker thread, never the JS thread: the kernel may
 * hold a page locked for a read that only the JS thread can answer.
 */
#ifndef GFS_PAGE_STORE_H
#define GFS_PAGE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* A store is at most this many consecutive pieces. */
#define PAGE_STORE_MAX_PIECES 64

typedef struct store_job {
  struct store_job *next;
  uint64_t nodeid;        /* the kernel's inode (the FUSE node id of the read) */
  uint64_t off;           /* file offset of the first byte */
  struct iovec *iov;      /* consecutive pieces */
  int iovcnt;
  size_t len;
  void *owner;            /* what keeps the pieces alive; released on the JS thread when done */
} store_job_t;

typedef struct page_store page_store_t;

page_store_t *page_store_new (void);
void page_store_free (page_store_t *ps);

/* A store for nodeid is decided (job counts as under way). 0 when too many are already. */
int page_store_begin (page_store_t *ps, store_job_t *job);
/* Write the job into the kernel's cache through the FUSE device fd (fd < 0: drop it), end it and
   queue it for page_store_take_done. Worker thread. */
void page_store_run (page_store_t *ps, int fd, store_job_t *job);
/* Block until no store of nodeid is under way. Worker thread. */
void page_store_wait (page_store_t *ps, uint64_t nodeid);
/* The finished jobs (a list through next), for their owners to be released. JS thread. */
store_job_t *page_store_take_done (page_store_t *ps);

#endif
