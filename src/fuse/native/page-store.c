/* Stores into the kernel's page cache (see page-store.h). */

#include "page-store.h"

#include <stdlib.h>
#include <uv.h>

/* At most this many stores at once (one per worker thread answering a read, in practice). */
#define MAX_BUSY 64

/* <linux/fuse.h>: FUSE_NOTIFY_STORE and struct fuse_notify_store_out. */
#define NOTIFY_STORE 4
struct raw_out_header { uint32_t len; int32_t error; uint64_t unique; };
struct raw_notify_store_out { uint64_t nodeid; uint64_t offset; uint32_t size; uint32_t padding; };

struct page_store {
  uv_mutex_t lock;
  uv_cond_t idle;               /* signalled whenever a store ends */
  uint64_t busy[MAX_BUSY];      /* node ids of the stores under way (0: free slot) */
  store_job_t *done;
};

page_store_t *page_store_new (void) {
  page_store_t *ps = calloc(1, sizeof(page_store_t));
  if (ps == NULL) return NULL;
  if (uv_mutex_init(&ps->lock) != 0) { free(ps); return NULL; }
  if (uv_cond_init(&ps->idle) != 0) { uv_mutex_destroy(&ps->lock); free(ps); return NULL; }
  return ps;
}

void page_store_free (page_store_t *ps) {
  if (ps == NULL) return;
  uv_cond_destroy(&ps->idle);
  uv_mutex_destroy(&ps->lock);
  free(ps);
}

int page_store_begin (page_store_t *ps, store_job_t *job) {
  if (ps == NULL || job->nodeid == 0) return 0;
  int ok = 0;
  uv_mutex_lock(&ps->lock);
  for (int i = 0; i < MAX_BUSY && !ok; i++) {
    if (ps->busy[i] == 0) ps->busy[i] = job->nodeid, ok = 1;
  }
  uv_mutex_unlock(&ps->lock);
  return ok;
}

static void write_store (int fd, const store_job_t *job) {
  /* The kernel takes a notification whole or not at all; its size field is 32 bits. */
  if (fd < 0 || job->len == 0 || job->len > UINT32_MAX / 2 || job->iovcnt > PAGE_STORE_MAX_PIECES) return;
  struct raw_out_header out = { (uint32_t) (sizeof(out) + sizeof(struct raw_notify_store_out) + job->len), NOTIFY_STORE, 0 };
  struct raw_notify_store_out arg = { job->nodeid, job->off, (uint32_t) job->len, 0 };
  struct iovec iov[PAGE_STORE_MAX_PIECES + 2];
  iov[0] = (struct iovec) { &out, sizeof(out) };
  iov[1] = (struct iovec) { &arg, sizeof(arg) };
  for (int i = 0; i < job->iovcnt; i++) iov[i + 2] = job->iov[i];
  /* Errors need no answer: ENOENT means the kernel has already forgotten the inode, and a cache
     that was not filled is read through FUSE as before. */
  (void) !writev(fd, iov, job->iovcnt + 2);
}

void page_store_run (page_store_t *ps, int fd, store_job_t *job) {
  write_store(fd, job);
  uv_mutex_lock(&ps->lock);
  for (int i = 0; i < MAX_BUSY; i++) {
    if (ps->busy[i] == job->nodeid) { ps->busy[i] = 0; break; }
  }
  job->next = ps->done;
  ps->done = job;
  uv_cond_broadcast(&ps->idle);
  uv_mutex_unlock(&ps->lock);
}

static int busy_with (page_store_t *ps, uint64_t nodeid) {
  for (int i = 0; i < MAX_BUSY; i++) if (ps->busy[i] == nodeid) return 1;
  return 0;
}

void page_store_wait (page_store_t *ps, uint64_t nodeid) {
  if (ps == NULL || nodeid == 0) return;
  uv_mutex_lock(&ps->lock);
  while (busy_with(ps, nodeid)) uv_cond_wait(&ps->idle, &ps->lock);
  uv_mutex_unlock(&ps->lock);
}

store_job_t *page_store_take_done (page_store_t *ps) {
  if (ps == NULL) return NULL;
  uv_mutex_lock(&ps->lock);
  store_job_t *list = ps->done;
  ps->done = NULL;
  uv_mutex_unlock(&ps->lock);
  return list;
}
