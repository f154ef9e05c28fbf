/* Stores into the kernel's page cache (see page-store.h). */

#include "page-store.h"

#include <pthread.h>
#include <stdlib.h>
#include <uv.h>

/* At most this many stores at once (one per read just answered, in practice). */
#define MAX_BUSY 64
/* At most this many inodes fenced at once (one per open or truncate being served); past that,
   every inode counts as fenced. */
#define MAX_FENCES 64

/* <linux/fuse.h>: FUSE_NOTIFY_STORE, FUSE_NOTIFY_INVAL_INODE and their bodies. */
#define NOTIFY_INVAL_INODE 2
#define NOTIFY_STORE 4
struct raw_out_header { uint32_t len; int32_t error; uint64_t unique; };
struct raw_notify_store_out { uint64_t nodeid; uint64_t offset; uint32_t size; uint32_t padding; };
struct raw_notify_inval_inode_out { uint64_t ino; int64_t off; int64_t len; };

struct page_store {
  uv_mutex_t lock;
  uv_cond_t idle;               /* signalled whenever a store ends */
  uv_cond_t queued;             /* signalled when a job is queued or the thread must stop */
  store_job_t *busy[MAX_BUSY];  /* the stores under way (NULL: free slot) */
  struct { uint64_t nodeid; int count; } fences[MAX_FENCES];
  int fence_overflow;           /* fences that found no slot */
  store_job_t *head, *tail;     /* submitted, not yet written */
  store_job_t *done;
  void (*on_done) (void *arg);
  void *arg;
  uv_thread_t thread;
  int running;
  int stopping;
};

static void write_store (const store_job_t *job) {
  /* The kernel takes a notification whole or not at all; its size field is 32 bits. */
  if (job->fd < 0 || job->len == 0 || job->len > UINT32_MAX / 2 || job->iovcnt > PAGE_STORE_MAX_PIECES) return;
  struct raw_out_header out = { (uint32_t) (sizeof(out) + sizeof(struct raw_notify_store_out) + job->len), NOTIFY_STORE, 0 };
  struct raw_notify_store_out arg = { job->nodeid, job->off, (uint32_t) job->len, 0 };
  struct iovec iov[PAGE_STORE_MAX_PIECES + 2];
  iov[0] = (struct iovec) { &out, sizeof(out) };
  iov[1] = (struct iovec) { &arg, sizeof(arg) };
  for (int i = 0; i < job->iovcnt; i++) iov[i + 2] = job->iov[i];
  /* Errors need no answer: ENOENT means the kernel has already forgotten the inode, and a cache
     that was not filled is read through FUSE as before. */
  (void) !writev(job->fd, iov, job->iovcnt + 2);
}

/* Drops every cached page of the inode (a store landed after a fence gave up waiting for it). */
static void write_drop_pages (int fd, uint64_t nodeid) {
  if (fd < 0) return;
  struct raw_out_header out = { (uint32_t) (sizeof(out) + sizeof(struct raw_notify_inval_inode_out)), NOTIFY_INVAL_INODE, 0 };
  struct raw_notify_inval_inode_out arg = { nodeid, 0, 0 };
  struct iovec iov[2] = { { &out, sizeof(out) }, { &arg, sizeof(arg) } };
  (void) !writev(fd, iov, 2);
}

/* Under ps->lock: the job has ended (written or dropped). */
static void end_job (page_store_t *ps, store_job_t *job) {
  for (int i = 0; i < MAX_BUSY; i++) {
    if (ps->busy[i] == job) { ps->busy[i] = NULL; break; }
  }
  job->next = ps->done;
  ps->done = job;
  uv_cond_broadcast(&ps->idle);
}

static void store_thread (void *data) {
  page_store_t *ps = data;
  uv_mutex_lock(&ps->lock);
  for (;;) {
    while (ps->head == NULL && !ps->stopping) uv_cond_wait(&ps->queued, &ps->lock);
    store_job_t *job = ps->head;
    if (job == NULL) break; /* stopping, nothing left */
    ps->head = job->next;
    if (ps->head == NULL) ps->tail = NULL;
    int fd = ps->stopping ? -1 : job->fd; /* stopping: the device is about to close */
    uv_mutex_unlock(&ps->lock);
    if (fd >= 0) write_store(job);
    uv_mutex_lock(&ps->lock);
    if (fd >= 0 && job->late) {
      uv_mutex_unlock(&ps->lock);
      write_drop_pages(fd, job->nodeid);
      uv_mutex_lock(&ps->lock);
    }
    end_job(ps, job);
    if (ps->on_done) {
      uv_mutex_unlock(&ps->lock);
      ps->on_done(ps->arg);
      uv_mutex_lock(&ps->lock);
    }
  }
  uv_mutex_unlock(&ps->lock);
}

page_store_t *page_store_new (void (*done) (void *arg), void *arg) {
  page_store_t *ps = calloc(1, sizeof(page_store_t));
  if (ps == NULL) return NULL;
  ps->on_done = done;
  ps->arg = arg;
  if (uv_mutex_init(&ps->lock) != 0) goto fail_lock;
  if (uv_cond_init(&ps->idle) != 0) goto fail_idle;
  if (uv_cond_init(&ps->queued) != 0) goto fail_queued;
  if (uv_thread_create(&ps->thread, store_thread, ps) != 0) goto fail_thread;
  ps->running = 1;
  return ps;
fail_thread:
  uv_cond_destroy(&ps->queued);
fail_queued:
  uv_cond_destroy(&ps->idle);
fail_idle:
  uv_mutex_destroy(&ps->lock);
fail_lock:
  free(ps);
  return NULL;
}

void page_store_stop (page_store_t *ps) {
  if (ps == NULL) return;
  uv_mutex_lock(&ps->lock);
  int running = ps->running;
  ps->running = 0;
  ps->stopping = 1;
  uv_cond_broadcast(&ps->queued);
  uv_mutex_unlock(&ps->lock);
  if (running) uv_thread_join(&ps->thread);
}

void page_store_free (page_store_t *ps) {
  if (ps == NULL) return;
  page_store_stop(ps);
  uv_cond_destroy(&ps->queued);
  uv_cond_destroy(&ps->idle);
  uv_mutex_destroy(&ps->lock);
  free(ps);
}

/* Under ps->lock. */
static int fenced (page_store_t *ps, uint64_t nodeid) {
  if (ps->fence_overflow > 0) return 1;
  for (int i = 0; i < MAX_FENCES; i++) if (ps->fences[i].count > 0 && ps->fences[i].nodeid == nodeid) return 1;
  return 0;
}

int page_store_begin (page_store_t *ps, store_job_t *job) {
  if (ps == NULL || job->nodeid == 0) return 0;
  int ok = 0;
  uv_mutex_lock(&ps->lock);
  if (!ps->stopping && !fenced(ps, job->nodeid)) {
    for (int i = 0; i < MAX_BUSY && !ok; i++) {
      if (ps->busy[i] == NULL) ps->busy[i] = job, ok = 1;
    }
  }
  uv_mutex_unlock(&ps->lock);
  return ok;
}

void page_store_submit (page_store_t *ps, int fd, store_job_t *job) {
  uv_mutex_lock(&ps->lock);
  job->fd = fd;
  job->next = NULL;
  if (ps->tail) ps->tail->next = job;
  else ps->head = job;
  ps->tail = job;
  uv_cond_signal(&ps->queued);
  uv_mutex_unlock(&ps->lock);
}

/* Under ps->lock: a store of nodeid under way (NULL: none). */
static store_job_t *busy_with (page_store_t *ps, uint64_t nodeid) {
  for (int i = 0; i < MAX_BUSY; i++) if (ps->busy[i] != NULL && ps->busy[i]->nodeid == nodeid) return ps->busy[i];
  return NULL;
}

void page_store_fence (page_store_t *ps, uint64_t nodeid, int max_wait_ms) {
  if (ps == NULL || nodeid == 0) return;
  /* A libfuse worker may be cancelled in its receive; not while it holds our lock. */
  int oldstate;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &oldstate);
  uv_mutex_lock(&ps->lock);
  int slot = -1;
  for (int i = 0; i < MAX_FENCES && slot < 0; i++) if (ps->fences[i].count > 0 && ps->fences[i].nodeid == nodeid) slot = i;
  for (int i = 0; i < MAX_FENCES && slot < 0; i++) if (ps->fences[i].count == 0) slot = i, ps->fences[i].nodeid = nodeid;
  if (slot >= 0) ps->fences[slot].count++;
  else ps->fence_overflow++;
  uint64_t deadline = uv_hrtime() + (uint64_t) max_wait_ms * 1000000u;
  for (;;) {
    store_job_t *job = busy_with(ps, nodeid);
    if (job == NULL) break;
    uint64_t now = uv_hrtime();
    if (now >= deadline || uv_cond_timedwait(&ps->idle, &ps->lock, deadline - now) != 0) {
      for (int i = 0; i < MAX_BUSY; i++) if (ps->busy[i] != NULL && ps->busy[i]->nodeid == nodeid) ps->busy[i]->late = 1;
      break;
    }
  }
  uv_mutex_unlock(&ps->lock);
  pthread_setcancelstate(oldstate, NULL);
}

void page_store_unfence (page_store_t *ps, uint64_t nodeid) {
  if (ps == NULL || nodeid == 0) return;
  uv_mutex_lock(&ps->lock);
  int found = 0;
  for (int i = 0; i < MAX_FENCES && !found; i++) {
    if (ps->fences[i].count > 0 && ps->fences[i].nodeid == nodeid) ps->fences[i].count--, found = 1;
  }
  if (!found && ps->fence_overflow > 0) ps->fence_overflow--;
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
