/*
 * Bytes put into the kernel's page cache of a file ahead of the reads that would ask for them
 * (FUSE_NOTIFY_STORE), written by a thread of their own after the read that fetched them has
 * been answered.
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
 * close-to-open reaches the kernel's cache): such a request fences the inode when it arrives
 * (page_store_fence: no new store of it begins, the ones under way are waited for) until it is
 * answered (page_store_unfence).
 *
 * Why a thread of its own, and why the fence waits before libfuse sees the request: a store
 * blocks on every page the kernel holds locked for a read in flight, and that read is answered
 * only once libfuse gives its worker the file's path. libfuse keeps a path locked while it serves
 * a request (a read's until after its reply, an open's through our callback), and queues later
 * requests behind a rename waiting for that lock. A store run on the read's worker, or an open
 * waiting for stores inside its callback, closed that circle: open -> store -> read -> rename ->
 * open, and the mount hung (seen: cat of a file renamed over while being read).
 * A fence that cannot see the inode's stores end in time (every worker busy elsewhere) stops
 * waiting and has the late stores followed by a drop of the inode's pages instead.
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
  int fd;                 /* the FUSE device (set by page_store_submit) */
  int late;               /* a fence stopped waiting for it: drop the inode's pages after it */
  void *owner;            /* what keeps the pieces alive; released on the JS thread when done */
} store_job_t;

typedef struct page_store page_store_t;

/* done(arg) is called on the store thread after jobs have ended (page_store_take_done). */
page_store_t *page_store_new (void (*done) (void *arg), void *arg);
/* Stops the store thread if it still runs, then frees. */
void page_store_free (page_store_t *ps);

/* A store for job->nodeid is decided (counts as under way). 0 when the inode is fenced or too
   many stores are under way. */
int page_store_begin (page_store_t *ps, store_job_t *job);
/* Hand a begun job to the store thread, which writes it through fd (fd < 0: drops it). */
void page_store_submit (page_store_t *ps, int fd, store_job_t *job);
/* Drops the jobs not yet written and joins the store thread (before the device is closed). */
void page_store_stop (page_store_t *ps);

/* No store of nodeid begins until page_store_unfence; waits up to max_wait_ms for the ones under
   way (see above). Call holding no libfuse lock. */
void page_store_fence (page_store_t *ps, uint64_t nodeid, int max_wait_ms);
void page_store_unfence (page_store_t *ps, uint64_t nodeid);

/* The finished jobs (a list through next), for their owners to be released. JS thread. */
store_job_t *page_store_take_done (page_store_t *ps);

#endif
