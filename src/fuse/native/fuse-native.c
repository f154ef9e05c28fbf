/*
 * gfs fork of fuse-native: N-API bindings for the libfuse 2.9 high-level API.
 *
 * Derived from fuse-native 2.2.6 (https://github.com/fuse-friends/fuse-native),
 * Copyright (c) 2019 Mathias Buus and the fuse-friends contributors, MIT License
 * (the full licence text is in LICENSE next to this file).
 * Changes for gfs (see native-notes/README.md for the reasons):
 *   - links Debian's system libfuse2 (-lfuse, FUSE_USE_VERSION 29) instead of a bundled copy;
 *     no macOS code;
 *   - mount options are built by the TypeScript side (big_writes, max_write, timeouts of 0);
 *   - create() passes the open(2) flags;
 *   - nanosecond times both ways, flag_utime_omit_ok so UTIME_OMIT reaches JS (as null);
 *   - fgetattr() passes the file handle;
 *   - POSIX record locks (lock) and BSD locks (flock) with fi->lock_owner, flock release on close;
 *   - one uv_async per mount with a queue of requests (each FUSE worker thread still blocks on its
 *     own semaphore until the JS thread replies), requests live on the worker's stack, replies
 *     are matched by (slot, sequence) so a callback called twice cannot wake the wrong request;
 *   - the mount thread tears libfuse down in the right order and tells JS when it has finished;
 *   - open() drops the kernel's cached attributes of the file (close-to-open with attr_timeout > 0);
 *     hard-linked files are never attribute-cached (each name is its own kernel inode here);
 *   - getattr of a name a listing just returned, or of a directory just made, is answered here
 *     (names-cache.h);
 *   - a read's reply may carry more of the file, stored into the kernel's page cache after the
 *     reply by a thread of its own; opens and size changes fence the file against stores before
 *     libfuse sees them (page-store.h);
 *   - FUSE_HANDLE_KILLPRIV_V2 for file systems that clear set-id bits themselves (answer_init);
 *   - a successful write or flush is answered to the kernel from the JS thread (answer_early);
 *   - a rename waits for the opens under way and while a process retries an open or stat that a
 *     rename made fail (retry-gate.h);
 *   - optionally, the FUSE workers and the JS thread share one CPU while requests are small
 *     (thread-placement.h).
 */

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 29
#endif
#ifndef _FILE_OFFSET_BITS
#define _FILE_OFFSET_BITS 64
#endif
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif

#include <fuse.h>
#include <fuse_opt.h>
#include <fuse_lowlevel.h> /* our channel (fuse_chan_new) and fuse_lowlevel_notify_inval_inode */

#include <node_api.h>
#include <uv.h>

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "names-cache.h"
#include "thread-placement.h"
#include "page-store.h"
#include "retry-gate.h"
#include "readdir-plus.h"
#include "busy-poll.h"
#include "aligned-pool.h"
#include "proc-state.h"

/* ------------------------------------------------------------------------------------------ */
/* Operations. The order is the order of OP_NAMES, which is exported to JS as `opNames`.      */

enum {
  OP_INIT, OP_GETATTR, OP_FGETATTR, OP_ACCESS, OP_STATFS, OP_READDIR, OP_OPEN, OP_CREATE,
  OP_READ, OP_WRITE, OP_FLUSH, OP_FSYNC, OP_RELEASE, OP_TRUNCATE, OP_FTRUNCATE, OP_UTIMENS,
  OP_CHMOD, OP_CHOWN, OP_UNLINK, OP_RENAME, OP_LINK, OP_SYMLINK, OP_READLINK, OP_MKDIR,
  OP_RMDIR, OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR, OP_LOCK, OP_FLOCK,
  OP_FSYNCDIR, OP_COUNT
};

static const char *const OP_NAMES[OP_COUNT] = {
  "init", "getattr", "fgetattr", "access", "statfs", "readdir", "open", "create",
  "read", "write", "flush", "fsync", "release", "truncate", "ftruncate", "utimens",
  "chmod", "chown", "unlink", "rename", "link", "symlink", "readlink", "mkdir",
  "rmdir", "setxattr", "getxattr", "listxattr", "removexattr", "lock", "flock", "fsyncdir"
};

/* Layout of the Float64Array that carries a struct stat from JS. */
enum {
  ST_MODE, ST_UID, ST_GID, ST_SIZE, ST_NLINK, ST_INO, ST_BLKSIZE, ST_BLOCKS,
  ST_ATIME_S, ST_ATIME_NS, ST_MTIME_S, ST_MTIME_NS, ST_CTIME_S, ST_CTIME_NS, ST_RDEV,
  ST_LEN
};

/* Layout of the Float64Array that carries a struct statvfs from JS. */
enum {
  SFS_BSIZE, SFS_FRSIZE, SFS_BLOCKS, SFS_BFREE, SFS_BAVAIL, SFS_FILES, SFS_FFREE, SFS_FAVAIL,
  SFS_NAMEMAX, SFS_LEN
};

/* Layout of the Float64Array that carries a struct flock from JS. */
enum { LK_TYPE, LK_WHENCE, LK_START, LK_LEN, LK_PID, LK_LEN_FIELDS };

/* ------------------------------------------------------------------------------------------ */
/* Data structures                                                                            */

/* One FUSE call. Lives on the stack of the libfuse worker thread that waits for the reply. */
typedef struct request {
  struct request *next;
  int op;
  int res;
  uv_sem_t sem;

  const char *path;
  const char *path2;
  struct fuse_file_info *fi;
  struct stat *st;
  struct statvfs *sfs;
  char *buf;              /* read, readlink, getxattr, listxattr */
  const char *cbuf;       /* write, setxattr */
  size_t len;
  off_t off;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  uid_t caller_uid;       /* who made the call (fuse_get_context), for ownership of new files */
  gid_t caller_gid;
  pid_t caller_pid;
  int flags;              /* open/create flags, datasync, setxattr flags, access mode, flock op */
  int cmd;                /* lock */
  struct flock *lk;
  struct timespec tv[2];
  int omit[2];
  const char *name;
  void *dirbuf;
  fuse_fill_dir_t filler;
  int blocking;           /* a lock wait that may last: the worker watches for FUSE_INTERRUPT */
  int interrupted;        /* set (atomically) by the worker when the kernel interrupted the call */
  int kill_privs;         /* the kernel asks for set-id bits to be cleared (write, truncate) */
  int attrs_kept;         /* open: nobody else can have changed the file (JS says so) */
  int made_st;            /* create: JS answered with the new file's attributes, in *st */
  uint64_t names_epoch;   /* readdir: the names cache's generation when the call was made */
  uint64_t nodeid;        /* read: the kernel inode read (for a store into its page cache) */
  store_job_t *store;     /* read: bytes to store into that cache once the read is answered */
  uint64_t unique;        /* write, flush: the kernel's request id, for an answer from the JS thread */
  int answered;           /* write, flush: the JS thread has sent the answer to the kernel itself */
} request_t;

typedef struct {
  request_t *req;
  uint32_t seq;
  napi_ref buf_ref;       /* external Buffer handed to JS for read/write, detached on reply */
  int interrupt_sent;     /* JS was told that this request was interrupted */
} slot_t;

#define KERNEL_OPCODES 64   /* FUSE opcodes counted (all are below 64 but CUSE_INIT) */

typedef struct {
  napi_env env;
  napi_ref dispatch;      /* JS: (op, slot, seq, ...args) => void */
  napi_ref on_exit;       /* JS: (loopResult) => void, once the mount thread has finished */
  napi_async_context async_ctx;

  struct fuse *fuse;
  struct fuse_chan *ch;
  char *mnt;
  int implemented[OP_COUNT];

  pthread_t thread;
  int thread_started;
  int thread_finished;
  int loop_result;

  uv_async_t work;        /* a worker queued a request */
  uv_async_t done;        /* the mount thread finished (ref'd: keeps the process alive) */
  int handles_open;       /* uv handles not yet closed */
  int finalized;          /* the JS external was garbage collected */

  uv_mutex_t qlock;
  request_t *qhead;
  request_t *qtail;

  slot_t *slots;          /* JS thread only */
  uint32_t nslots;
  uint32_t seq;

  names_cache_t *names;   /* attributes from listings (NULL: none kept) */
  page_store_t *stores;   /* stores into the kernel's page cache (NULL: none made) */
  uv_async_t stored;      /* a store finished: release what kept its bytes alive */
  int clears_set_id;      /* the file system clears set-id bits itself (see answer_init) */
  int pin_threads;        /* keep workers and the JS thread on one CPU while requests are small */
  int readdir_plus;       /* answer READDIRPLUS (readdir-plus.h) */
  uint64_t busy_poll_ns;  /* how long idle CPUs poll after a request (busy-poll.h); 0: never */
  busy_poll_t *polls;     /* the polling threads while mounted (NULL: none) */
  int locks_asked;        /* atomic: a record lock was ever requested through this mount */
  double answered_early;  /* writes and flushes answered from the JS thread (JS thread only) */
  uint64_t kernel_requests[KERNEL_OPCODES]; /* atomic: requests read from the kernel, by opcode (tests) */
} mount_t;

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */

#define NAPI_OK(call) do { if ((call) != napi_ok) goto napi_fail; } while (0)

static napi_value make_str (napi_env env, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &v);
  return v;
}

static napi_value make_num (napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

static napi_value make_bool (napi_env env, int b) {
  napi_value v;
  napi_get_boolean(env, b != 0, &v);
  return v;
}

static napi_value make_null (napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}

static napi_value make_bigint_u64 (napi_env env, uint64_t n) {
  napi_value v;
  napi_create_bigint_uint64(env, n, &v);
  return v;
}

static napi_value make_timespec (napi_env env, const struct timespec *ts) {
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, make_num(env, (double) ts->tv_sec));
  napi_set_element(env, arr, 1, make_num(env, (double) ts->tv_nsec));
  return arr;
}

static void throw_error (napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
}

/* Returns a malloc'd UTF-8 copy of a JS string, or NULL. */
static char *get_string (napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s == NULL) return NULL;
  if (napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

/* Reads a Float64Array of at least `min` elements. */
static double *get_f64 (napi_env env, napi_value v, size_t min) {
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return NULL;
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok) return NULL;
  if (type != napi_float64_array || length < min) return NULL;
  return (double *) data;
}

static int get_bytes (napi_env env, napi_value v, const char **data, size_t *len) {
  bool is_buf = false;
  if (napi_is_buffer(env, v, &is_buf) != napi_ok || !is_buf) return -1;
  void *d;
  if (napi_get_buffer_info(env, v, &d, len) != napi_ok) return -1;
  *data = (const char *) d;
  return 0;
}

/* A double from JS as an integer: NaN and infinities become 0, the rest is clamped to int64. */
static int64_t num (double d) {
  if (!isfinite(d)) return 0;
  if (d >= 9223372036854775807.0) return INT64_MAX;
  if (d <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t) d;
}

static void to_timespec (struct timespec *ts, double sec, double nsec) {
  ts->tv_sec = (time_t) num(sec);
  int64_t ns = num(nsec);
  if (ns < 0) ns = 0;
  if (ns > 999999999) ns = 999999999;
  ts->tv_nsec = ns;
}

static void fill_stat (struct stat *st, const double *a) {
  memset(st, 0, sizeof(*st));
  st->st_mode = (mode_t) num(a[ST_MODE]);
  st->st_uid = (uid_t) num(a[ST_UID]);
  st->st_gid = (gid_t) num(a[ST_GID]);
  st->st_size = (off_t) num(a[ST_SIZE]);
  st->st_nlink = (nlink_t) num(a[ST_NLINK]);
  st->st_ino = (ino_t) num(a[ST_INO]);
  st->st_blksize = (blksize_t) num(a[ST_BLKSIZE]);
  st->st_blocks = (blkcnt_t) num(a[ST_BLOCKS]);
  st->st_rdev = (dev_t) num(a[ST_RDEV]);
  to_timespec(&st->st_atim, a[ST_ATIME_S], a[ST_ATIME_NS]);
  to_timespec(&st->st_mtim, a[ST_MTIME_S], a[ST_MTIME_NS]);
  to_timespec(&st->st_ctim, a[ST_CTIME_S], a[ST_CTIME_NS]);
}

static void fill_statvfs (struct statvfs *s, const double *a) {
  memset(s, 0, sizeof(*s));
  s->f_bsize = (unsigned long) num(a[SFS_BSIZE]);
  s->f_frsize = (unsigned long) num(a[SFS_FRSIZE]);
  s->f_blocks = (fsblkcnt_t) num(a[SFS_BLOCKS]);
  s->f_bfree = (fsblkcnt_t) num(a[SFS_BFREE]);
  s->f_bavail = (fsblkcnt_t) num(a[SFS_BAVAIL]);
  s->f_files = (fsfilcnt_t) num(a[SFS_FILES]);
  s->f_ffree = (fsfilcnt_t) num(a[SFS_FFREE]);
  s->f_favail = (fsfilcnt_t) num(a[SFS_FAVAIL]);
  s->f_namemax = (unsigned long) num(a[SFS_NAMEMAX]);
}

/* ------------------------------------------------------------------------------------------ */
/* Our channel: reads and writes /dev/fuse as libfuse's own does, and on each request notes its  */
/* opcode, id and node id in thread-locals. libfuse's high-level API hides them, but the worker  */
/* that received a request is the one that runs and answers it, so our callbacks can tell why    */
/* libfuse called them (a rename that hides an open file for unlink or for rename-over) and which */
/* kernel inode a lock is on (to drop its page cache), and the reply can be corrected (ESTALE).  */

/* (libfuse reads through the channel unless the splice_read option is given, which we never do.) */

/* struct fuse_in_header / fuse_out_header of the kernel ABI (<linux/fuse.h>; libfuse 2 does not */
/* install its copy, and the kernel's clashes with libfuse's names).                            */
struct raw_in_header { uint32_t len; uint32_t opcode; uint64_t unique; uint64_t nodeid;
                       uint32_t uid; uint32_t gid; uint32_t pid; uint32_t padding; };
struct raw_out_header { uint32_t len; int32_t error; uint64_t unique; };
enum {
  RAW_LOOKUP = 1, RAW_SYMLINK = 6, RAW_MKNOD = 8, RAW_MKDIR = 9, RAW_LINK = 13, RAW_CREATE = 35,
  RAW_GETATTR = 3, RAW_SETATTR = 4, RAW_READLINK = 5, RAW_RENAME = 12, RAW_OPEN = 14,
  RAW_STATFS = 17, RAW_SETXATTR = 21, RAW_GETXATTR = 22, RAW_LISTXATTR = 23,
  RAW_REMOVEXATTR = 24, RAW_OPENDIR = 27, RAW_READ = 15, RAW_WRITE = 16, RAW_INIT = 26, RAW_SETLK = 32, RAW_SETLKW = 33, RAW_ACCESS = 34,
  RAW_FLUSH = 25, RAW_FORGET = 2, RAW_INTERRUPT = 36, RAW_BATCH_FORGET = 42
};

static __thread uint32_t cur_opcode;
static __thread uint64_t cur_unique;
static __thread uint64_t cur_nodeid;
static __thread char cur_rename_to[256]; /* FUSE_RENAME: the new name (last component) */
static __thread uint64_t cur_link_from;  /* FUSE_LINK: the node id of the existing name */
static __thread int cur_kill_privs;      /* FUSE_WRITE/SETATTR: the kernel asks us to clear set-id bits */
static __thread uint32_t cur_pid;        /* the process (thread) that made the request */
static __thread int cur_gated;           /* a retry of its process is under way; 2: this may be it (retry-gate.h) */
static __thread int cur_opening;         /* FUSE_OPEN: renames wait for its answer (retry-gate.h) */
static __thread int cur_renaming;        /* FUSE_RENAME: opens wait for its answer */
static __thread store_job_t *cur_store;  /* FUSE_READ: to store once its reply is sent */
static __thread mount_t *cur_store_mount;

static __thread uint64_t cur_fenced;     /* FUSE_OPEN/SETATTR: the node fenced against stores */
static __thread int cur_answered;        /* FUSE_WRITE/FLUSH: answered from the JS thread (answer_early) */

/* Hands the store this thread holds to the store thread, to write (fd >= 0) or drop; the JS
   thread then releases its bytes (stores_done). */
static void finish_store (int fd) {
  store_job_t *job = cur_store;
  mount_t *m = cur_store_mount;
  cur_store = NULL;
  cur_store_mount = NULL;
  if (job == NULL || m == NULL) return;
  page_store_submit(m->stores, fd, job);
}

/* Store thread: stores ended. */
static void stores_done (void *arg) {
  uv_async_send(&((mount_t *) arg)->stored);
}

/* A fence lasts until its request is answered; one never answered ends at this thread's next. */
static void end_fence (mount_t *m) {
  if (cur_fenced != 0 && m != NULL) page_store_unfence(m->stores, cur_fenced);
  cur_fenced = 0;
}

/* The kernel ABI's struct fuse_attr, and the replies that carry one (struct fuse_entry_out for a
   new name, struct fuse_attr_out for getattr/setattr). */
struct raw_attr { uint64_t ino, size, blocks, atime, mtime, ctime; uint32_t atimensec, mtimensec, ctimensec, mode, nlink; };
struct raw_entry_out { uint64_t nodeid, generation, entry_valid, attr_valid; uint32_t entry_valid_nsec, attr_valid_nsec; struct raw_attr attr; };
struct raw_attr_out { uint64_t attr_valid; uint32_t attr_valid_nsec, dummy; struct raw_attr attr; };

/* The high-level API gives each name of a hard-linked file its own kernel inode, so a link or
   unlink through one name leaves the others' cached link count (and any attribute changed
   through another name) stale. Such files get no attribute caching at all: every stat asks JS,
   which keeps attributes per inode number. Everything else keeps attr_timeout. */
static void uncache_shared_inode (uint32_t opcode, const struct iovec *iov, size_t count) {
  if (count < 2) return;
  struct raw_attr *a = NULL;
  uint64_t *valid = NULL;
  uint32_t *valid_nsec = NULL;
  switch (opcode) {
    case RAW_LOOKUP: case RAW_SYMLINK: case RAW_MKNOD: case RAW_MKDIR: case RAW_LINK: case RAW_CREATE:
      if (iov[1].iov_len < sizeof(struct raw_entry_out)) return;
      struct raw_entry_out *e = (struct raw_entry_out *) iov[1].iov_base;
      a = &e->attr, valid = &e->attr_valid, valid_nsec = &e->attr_valid_nsec;
      break;
    case RAW_GETATTR: case RAW_SETATTR:
      if (iov[1].iov_len < sizeof(struct raw_attr_out)) return;
      struct raw_attr_out *o = (struct raw_attr_out *) iov[1].iov_base;
      a = &o->attr, valid = &o->attr_valid, valid_nsec = &o->attr_valid_nsec;
      break;
    default:
      return;
  }
  if (S_ISREG(a->mode) && a->nlink > 1) *valid = 0, *valid_nsec = 0;
}

/* An answer about a directory. The walk to a retry checks each directory's permission with a
   GETATTR of it, which is not the retry of a GETATTR (retry-gate.h). */
static int answers_dir (uint32_t opcode, int32_t error, const struct iovec *iov, size_t count) {
  if (opcode != RAW_GETATTR || error != 0 || count < 2 || iov[1].iov_len < sizeof(struct raw_attr_out)) return 0;
  return S_ISDIR(((struct raw_attr_out *) iov[1].iov_base)->attr.mode);
}

/* Requests the kernel wants no answer to. */
static int no_answer (uint32_t opcode) {
  return opcode == RAW_FORGET || opcode == RAW_BATCH_FORGET || opcode == RAW_INTERRUPT;
}

/* Requests on an inode the kernel already holds (not on a name in a directory). */
static int names_no_entry (uint32_t opcode) {
  switch (opcode) {
    case RAW_GETATTR: case RAW_SETATTR: case RAW_READLINK: case RAW_OPEN: case RAW_STATFS:
    case RAW_SETXATTR: case RAW_GETXATTR: case RAW_LISTXATTR: case RAW_REMOVEXATTR:
    case RAW_OPENDIR: case RAW_ACCESS:
      return 1;
    default:
      return 0;
  }
}

/* FUSE_HANDLE_KILLPRIV_V2 (<linux/fuse.h>, protocol 7.33): the file system clears set-user-ID and
   set-group-ID itself, on the writes and truncates the kernel marks and on chown. Without it the
   kernel asks getxattr("security.capability") before every write(2): a round trip to a worker
   thread each (measured: fio 4k randwrite 6,929 -> 8,945 IOPS, 4 x 2,000 O_APPEND lines
   9,229 -> 10,825-13,165 lines/s with it). libfuse 2.9 does not know the flag, so the channel
   adds it to the INIT reply when the kernel offered it. The marks reach JS as Caller.killPrivs;
   chown clears the bits at the master. */
#define RAW_HANDLE_KILLPRIV_V2 (1u << 28)
#define RAW_WRITE_KILL_SUIDGID (1u << 2)  /* fuse_write_in.write_flags */
#define RAW_FATTR_KILL_SUIDGID (1u << 11) /* fuse_setattr_in.valid */
static uint32_t kernel_init_flags;       /* what the kernel offered in FUSE_INIT */
static __thread int cur_init_killpriv;   /* FUSE_INIT: this mount's file system clears set-id bits */
static __thread int cur_init_plus;       /* FUSE_INIT: this mount answers READDIRPLUS */

/* struct fuse_init_in { u32 major, minor, max_readahead, flags; ... } */
static void note_kernel_init (const char *body, size_t len) {
  uint32_t flags;
  if (len < 16) return;
  memcpy(&flags, body + 12, 4);
  __atomic_store_n(&kernel_init_flags, flags, __ATOMIC_RELEASE);
}

/* struct fuse_init_out { u32 major, minor, max_readahead, flags; ... }: adds what libfuse 2.9 does
   not know of and this mount does, where the kernel offered it. */
static void answer_init (const struct iovec iov[], size_t count) {
  uint32_t offered = __atomic_load_n(&kernel_init_flags, __ATOMIC_ACQUIRE), flags;
  uint32_t add = (cur_init_killpriv ? offered & RAW_HANDLE_KILLPRIV_V2 : 0) | (cur_init_plus ? plus_init_flag(offered) : 0);
  if (add == 0 || count < 2 || iov[1].iov_len < 16) return;
  memcpy(&flags, (char *) iov[1].iov_base + 12, 4);
  flags |= add;
  memcpy((char *) iov[1].iov_base + 12, &flags, 4);
}

/* struct fuse_write_in { u64 fh, offset; u32 size, write_flags; ... };
   struct fuse_setattr_in { u32 valid; ... } */
static int wants_privs_killed (uint32_t opcode, const char *body, size_t len) {
  uint32_t v;
  if (opcode == RAW_WRITE && len >= 24) {
    memcpy(&v, body + 20, 4);
    return (v & RAW_WRITE_KILL_SUIDGID) != 0;
  }
  if (opcode == RAW_SETATTR && len >= 4) {
    memcpy(&v, body, 4);
    return (v & RAW_FATTR_KILL_SUIDGID) != 0;
  }
  return 0;
}

static int chan_receive (struct fuse_chan **chp, char *buf, size_t size) {
  struct fuse_chan *ch = *chp;
  struct fuse_session *se = fuse_chan_session(ch);
  mount_t *m = (mount_t *) fuse_chan_data(ch);
  ssize_t res;
  int err;
  /* Never left over (libfuse answers every request), but a fenced inode must not stay so. */
  finish_store(-1);
  end_fence(m);
  if (cur_opening) gate_open_answered(), cur_opening = 0;
  if (cur_gated) gate_request_answered(cur_pid, GATE_NO_ANSWER), cur_gated = 0;
  if (cur_renaming) gate_rename_answered(), cur_renaming = 0;
restart:
  res = read(fuse_chan_fd(ch), buf, size);
  err = errno;
  if (fuse_session_exited(se)) return 0;
  if (res == -1) {
    if (err == ENOENT) goto restart; /* the request was interrupted before we read it */
    if (err == ENODEV) { fuse_session_exit(se); return 0; } /* unmounted */
    if (err != EINTR && err != EAGAIN) perror("fuse: reading device");
    return -err;
  }
  if ((size_t) res < sizeof(struct raw_in_header)) {
    fprintf(stderr, "fuse: short read on fuse device\n");
    return -EIO;
  }
  const struct raw_in_header *in = (const struct raw_in_header *) buf;
  if (m != NULL && in->opcode < KERNEL_OPCODES) __atomic_fetch_add(&m->kernel_requests[in->opcode], 1, __ATOMIC_RELAXED);
  if (m != NULL) busy_poll_poke(m->polls); /* the next request's wake-up finds the CPUs awake */
  plus_receive(buf, (size_t) res); /* a READDIRPLUS goes on as a READDIR (readdir-plus.h) */
  cur_opcode = in->opcode;
  cur_unique = in->unique;
  cur_answered = 0;
  cur_nodeid = in->nodeid;
  cur_rename_to[0] = '\0';
  cur_link_from = 0;
  cur_kill_privs = wants_privs_killed(in->opcode, buf + sizeof(struct raw_in_header), (size_t) res - sizeof(struct raw_in_header));
  cur_pid = in->pid;
  cur_gated = no_answer(in->opcode) ? 0 : gate_request_begins(in->pid, in->opcode, in->opcode == RAW_OPEN);
  cur_opening = in->opcode == RAW_OPEN;
  if (in->opcode == RAW_RENAME) gate_rename_begins(in->pid), cur_renaming = 1;
  /* Before libfuse takes the file's path lock (page-store.h): an open or a size change must not
     be answered while a store decided before it can still land. */
  if ((in->opcode == RAW_OPEN || in->opcode == RAW_SETATTR) && m != NULL && in->nodeid != 0) {
    page_store_fence(m->stores, in->nodeid, 200);
    cur_fenced = in->nodeid;
  }
  if (in->opcode == RAW_INIT) note_kernel_init(buf + sizeof(struct raw_in_header), (size_t) res - sizeof(struct raw_in_header));
  if (in->opcode == RAW_LINK && (size_t) res >= sizeof(struct raw_in_header) + 8) {
    memcpy(&cur_link_from, buf + sizeof(struct raw_in_header), 8); /* struct fuse_link_in { u64 oldnodeid; } */
  }
  if (in->opcode == RAW_RENAME) {
    /* body: struct fuse_rename_in { u64 newdir; }, then "oldname\0newname\0" */
    const char *names = buf + sizeof(struct raw_in_header) + 8;
    const char *end = buf + res;
    const char *old_end = names < end ? memchr(names, '\0', (size_t) (end - names)) : NULL;
    if (old_end != NULL && old_end + 1 < end) {
      const char *to = old_end + 1;
      size_t n = strnlen(to, (size_t) (end - to));
      if (n < sizeof(cur_rename_to)) { memcpy(cur_rename_to, to, n); cur_rename_to[n] = '\0'; }
    }
  }
  return (int) res;
}

/* This thread's request is answered: forget it, so that nothing can act on a stale opcode. */
static void forget_current (void) {
  if (cur_gated) gate_request_answered(cur_pid, cur_opcode == RAW_LOOKUP ? GATE_LOOKUP : GATE_OTHER), cur_gated = 0;
  cur_opcode = 0, cur_unique = 0, cur_nodeid = 0, cur_rename_to[0] = '\0', cur_kill_privs = 0;
}

/* A request of our own (readdir-plus.h), through libfuse on this thread. */
static void process_own (void *ctx, const char *buf, size_t len) {
  struct fuse_chan *ch = (struct fuse_chan *) ctx;
  fuse_session_process(fuse_chan_session(ch), buf, len, ch);
}

static int chan_send (struct fuse_chan *ch, const struct iovec iov[], size_t count) {
  if (iov == NULL) return 0;
  if (plus_is_own_answer(iov, count)) { /* not for the kernel */
    uncache_shared_inode(RAW_LOOKUP, iov, count);
    plus_capture(iov, count);
    return 0;
  }
  struct iovec plus[2];
  if (plus_build(iov, count, process_own, ch, plus)) {
    int res = chan_send(ch, plus, 2);
    plus_sent(res, process_own, ch);
    return res;
  }
  mount_t *m = (mount_t *) fuse_chan_data(ch);
  int answers_store = 0, answers_fence = 0;
  if (count > 0 && iov[0].iov_len >= sizeof(struct raw_out_header)) {
    struct raw_out_header *out = (struct raw_out_header *) iov[0].iov_base;
    if (cur_answered && out->unique != 0 && out->unique == cur_unique) {
      /* The JS thread answered it already (answer_early): libfuse's answer is not sent again. */
      cur_answered = 0;
      forget_current();
      return 0;
    }
    /* The high-level API finds files by path. A process that looked a name up just before another
       renamed a file over it (or deleted it) holds the old inode, whose path libfuse has dropped:
       libfuse answers ENOENT for it, and stat or open of a name that always existed fails. ESTALE
       instead makes the kernel look the name up again and retry once, as it does for NFS. */
    if (out->unique != 0 && out->unique == cur_unique && out->error == -ENOENT && names_no_entry(cur_opcode)) {
      int retried = cur_gated == 2; /* the kernel retries once */
      out->error = -ESTALE;
      if (cur_gated) gate_request_answered(cur_pid, retried ? GATE_RETRY : GATE_OTHER), cur_gated = 0;
      if (!retried) gate_close(cur_pid, cur_opcode); /* renames wait for the retry (retry-gate.h) */
    }
    if (out->unique != 0 && out->unique == cur_unique && cur_gated == 2 && !answers_dir(cur_opcode, out->error, iov, count)) {
      gate_request_answered(cur_pid, GATE_RETRY), cur_gated = 0;
    }
    if (out->unique != 0 && out->unique == cur_unique && cur_opening) gate_open_answered(), cur_opening = 0;
    if (out->unique != 0 && out->unique == cur_unique && cur_renaming) gate_rename_answered(), cur_renaming = 0;
    if (out->unique != 0 && out->unique == cur_unique && out->error == 0) uncache_shared_inode(cur_opcode, iov, count);
    if (out->unique != 0 && out->unique == cur_unique && out->error == 0 && cur_opcode == RAW_INIT) answer_init(iov, count);
    answers_store = cur_store != NULL && out->unique != 0 && out->unique == cur_unique;
    answers_fence = cur_fenced != 0 && out->unique != 0 && out->unique == cur_unique;
    if (out->unique != 0 && out->unique == cur_unique) forget_current();
  }
  ssize_t res = writev(fuse_chan_fd(ch), iov, count);
  int err = errno;
  /* After the reply: until then the kernel holds the pages of the read locked. */
  if (answers_store) finish_store(fuse_chan_fd(ch));
  if (answers_fence) end_fence(m);
  if (res == -1) {
    /* ENOENT: the request was interrupted and the kernel no longer waits for the answer */
    if (!fuse_session_exited(fuse_chan_session(ch)) && err != ENOENT) perror("fuse: writing device");
    return -err;
  }
  return 0;
}

static void chan_destroy (struct fuse_chan *ch) {
  int fd = fuse_chan_fd(ch);
  if (fd != -1) close(fd);
}

static struct fuse_chan_ops chan_ops = { .receive = chan_receive, .send = chan_send, .destroy = chan_destroy };

/* Replaces the channel fuse_mount made with ours, on a duplicate of its descriptor (the kernel */
/* connection lives while either is open), so the original can be destroyed at once.            */
static struct fuse_chan *own_channel (struct fuse_chan *kern, mount_t *m) {
  int fd = dup(fuse_chan_fd(kern));
  if (fd < 0) return NULL;
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  struct fuse_chan *ch = fuse_chan_new(&chan_ops, fd, fuse_chan_bufsize(kern), m);
  if (ch == NULL) close(fd);
  return ch;
}

static const char *base_name (const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* Is rename(src, dest) libfuse hiding the open target of the FUSE_RENAME being served (and not
   that rename itself)? Then src is the request's new name and dest a fresh .fuse_hidden name. */
static int hides_rename_target (const char *src, const char *dest) {
  return cur_opcode == RAW_RENAME && cur_rename_to[0] != '\0' && strcmp(base_name(src), cur_rename_to) == 0 &&
         strncmp(base_name(dest), ".fuse_hidden", 12) == 0 && strcmp(base_name(dest), cur_rename_to) != 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Worker side: hand a request to the JS thread and wait for the reply.                       */

/* What a request may change is dropped from the names cache when it is made and again when it is
   answered (a listing under way meanwhile keeps nothing), as the JS attribute cache drops it: the
   paths it names; for a mkdir, rmdir or rename their directories (link counts) and for the latter
   two everything beneath; everything for a lock (JS then forgets every attribute). An open counts:
   it fetches fresh attributes (close-to-open). */
static void names_forget (mount_t *m, const request_t *r) {
  switch (r->op) {
    case OP_INIT: case OP_GETATTR: case OP_FGETATTR: case OP_ACCESS: case OP_STATFS: case OP_READDIR:
    case OP_READ: case OP_READLINK: case OP_GETXATTR: case OP_LISTXATTR: case OP_FSYNCDIR:
      return;
    case OP_RENAME:
      names_drop(m->names, r->path, 1, 1);
      names_drop(m->names, r->path2, 1, 1);
      return;
    case OP_RMDIR:
      names_drop(m->names, r->path, 1, 1);
      return;
    case OP_MKDIR: case OP_UNLINK: /* (the directory's times and, for a mkdir, link count) */
      names_drop(m->names, r->path, 1, 0);
      return;
    case OP_LINK:
      names_drop(m->names, r->path, 0, 0);
      names_drop(m->names, r->path2, 0, 0);
      return;
    case OP_SYMLINK:
      names_drop(m->names, r->path2, 0, 0); /* path is the link's target */
      return;
    case OP_LOCK: case OP_FLOCK:
      names_changed(m->names);
      return;
    default:
      if (r->path != NULL) names_drop(m->names, r->path, 0, 0);
      else names_changed(m->names);
  }
}

static int call_js (request_t *r) {
  struct fuse_context *ctx = fuse_get_context();
  mount_t *m = (mount_t *) ctx->private_data;
  int oldstate;

  r->caller_uid = ctx->uid;
  r->caller_gid = ctx->gid;
  r->caller_pid = ctx->pid;
  r->kill_privs = cur_kill_privs;

  /* fuse_loop_mt cancels its idle workers when the session ends; a worker parked here owns a
     request that the JS thread may still touch, so it must not be cancelled while it waits. */
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &oldstate);

  r->res = -EIO;
  r->next = NULL;
  pin_request(r->op == OP_READ || r->op == OP_WRITE ? r->len : 0);
  names_forget(m, r);
  if (r->op == OP_READDIR) r->names_epoch = names_epoch(m->names); /* only a listing needs it */
  if (uv_sem_init(&r->sem, 0) != 0) {
    pthread_setcancelstate(oldstate, NULL);
    return -EIO;
  }

  uv_mutex_lock(&m->qlock);
  if (m->qtail) m->qtail->next = r;
  else m->qhead = r;
  m->qtail = r;
  uv_mutex_unlock(&m->qlock);

  uv_async_send(&m->work);
  if (r->blocking) {
    /* A lock wait can last for ever; if the waiting process gets a signal the kernel sends
       FUSE_INTERRUPT, which libfuse only records. Look for it now and then and tell JS, which
       gives up the wait and answers EINTR. */
    while (uv_sem_trywait(&r->sem) != 0) {
      if (!__atomic_load_n(&r->interrupted, __ATOMIC_ACQUIRE) && fuse_interrupted()) {
        __atomic_store_n(&r->interrupted, 1, __ATOMIC_RELEASE);
        uv_async_send(&m->work);
      }
      struct timespec pause = { 0, 20 * 1000 * 1000 };
      nanosleep(&pause, NULL);
    }
  } else {
    uv_sem_wait(&r->sem);
  }
  uv_sem_destroy(&r->sem);

  pthread_setcancelstate(oldstate, NULL);
  return r->res;
}

#define REQ(o) request_t r; memset(&r, 0, sizeof(r)); r.op = (o)

/* libfuse looks a new directory up (getattr) right after the mkdir, on the same thread. Those
   attributes are kept like a listing's (names-cache.h): each create in the directory drops the
   kernel's copy of them, and with default_permissions the path walk to the next new name asks
   again (measured: one GETATTR per file made, ~65 us each through JS, ~12% of a small file's
   time). Answered here, it is what the kernel would have kept for attr_timeout without the drop,
   and what the JS cache answers: a create answered ahead does not touch its directory's entry. */
static void keep_new_dir (mount_t *m, uint64_t epoch, const char *path, const struct stat *st) {
  const char *slash = strrchr(path, '/');
  char dir[PATH_MAX];
  size_t n;
  if (slash == NULL || !S_ISDIR(st->st_mode)) return;
  n = slash == path ? 1 : (size_t) (slash - path);
  if (n >= sizeof(dir)) return;
  memcpy(dir, path, n);
  dir[n] = '\0';
  names_put(m->names, epoch, dir, slash + 1, st);
}

static int fn_getattr (const char *path, struct stat *st) {
  mount_t *m = (mount_t *) fuse_get_context()->private_data;
  if (names_get(m->names, path, st)) return 0;
  int after_mkdir = cur_opcode == RAW_MKDIR;
  uint64_t epoch = after_mkdir ? names_epoch(m->names) : 0;
  REQ(OP_GETATTR); r.path = path; r.st = st;
  int res = call_js(&r);
  if (res == 0 && after_mkdir) keep_new_dir(m, epoch, path, st);
  return res;
}

/* libfuse's CREATE asks fgetattr for the new file's attributes right after fn_create, on the same
   thread: JS answered the create with them (one trip to JS fewer per new file). */
static __thread struct stat created_st;
static __thread int created_valid;

static int fn_fgetattr (const char *path, struct stat *st, struct fuse_file_info *fi) {
  if (created_valid && cur_opcode == RAW_CREATE) {
    created_valid = 0;
    *st = created_st;
    return 0;
  }
  REQ(OP_FGETATTR); r.path = path; r.st = st; r.fi = fi;
  return call_js(&r);
}

static int fn_access (const char *path, int mode) {
  REQ(OP_ACCESS); r.path = path; r.flags = mode;
  return call_js(&r);
}

static int fn_statfs (const char *path, struct statvfs *sfs) {
  REQ(OP_STATFS); r.path = path; r.sfs = sfs;
  return call_js(&r);
}

static int fn_readdir (const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                       struct fuse_file_info *fi) {
  REQ(OP_READDIR); r.path = path; r.dirbuf = buf; r.filler = filler; r.off = off; r.fi = fi;
  return call_js(&r);
}

/* The kernel caches attributes for attr_timeout, but an open must see what another mount closed
   (close-to-open): JS's open asked the master afresh, so the kernel's copy is dropped here, before
   the reply, and its next stat or read past the old size asks JS again. Attributes only (offset
   -1): dropping pages could wait on a read that waits on us. Not when JS answered from a write
   delegation (no other mount can have changed the file): the drop would only cost the next
   open of it a GETATTR (each `echo >>` one request in six). */
static int fn_open (const char *path, struct fuse_file_info *fi) {
  mount_t *m = (mount_t *) fuse_get_context()->private_data;
  REQ(OP_OPEN); r.path = path; r.fi = fi; r.flags = fi->flags;
  int res = call_js(&r); /* (no store of the file lands after the reply: chan_receive fenced it) */
  if (res == 0 && !r.attrs_kept && cur_opcode == RAW_OPEN && cur_nodeid != 0 && m->ch != NULL) {
    fuse_lowlevel_notify_inval_inode(m->ch, (fuse_ino_t) cur_nodeid, -1, 0);
  }
  return res;
}

static int fn_create (const char *path, mode_t mode, struct fuse_file_info *fi) {
  REQ(OP_CREATE); r.path = path; r.mode = mode; r.fi = fi; r.flags = fi->flags; r.st = &created_st;
  created_valid = 0;
  int res = call_js(&r);
  created_valid = res == 0 && r.made_st;
  /* Before the answer: a stat of the directory right after the create shows its new times. */
  if (created_valid) names_touch_dir(((mount_t *) fuse_get_context()->private_data)->names, path, &created_st.st_ctim);
  return res;
}

static int fn_read (const char *path, char *buf, size_t len, off_t off, struct fuse_file_info *fi) {
  mount_t *m = (mount_t *) fuse_get_context()->private_data;
  REQ(OP_READ); r.path = path; r.buf = buf; r.len = len; r.off = off; r.fi = fi;
  r.nodeid = cur_opcode == RAW_READ ? cur_nodeid : 0;
  int res = call_js(&r);
  if (r.store != NULL) cur_store = r.store, cur_store_mount = m; /* run by chan_send after the reply */
  return res;
}

static int fn_write (const char *path, const char *buf, size_t len, off_t off,
                     struct fuse_file_info *fi) {
  REQ(OP_WRITE); r.path = path; r.cbuf = buf; r.len = len; r.off = off; r.fi = fi;
  r.unique = cur_opcode == RAW_WRITE ? cur_unique : 0;
  int res = call_js(&r);
  cur_answered = r.answered;
  return res;
}

static int fn_flush (const char *path, struct fuse_file_info *fi) {
  REQ(OP_FLUSH); r.path = path; r.fi = fi;
  r.unique = cur_opcode == RAW_FLUSH ? cur_unique : 0; /* (not the flush libfuse may make inside a release) */
  int res = call_js(&r);
  cur_answered = r.answered;
  return res;
}

static int fn_fsync (const char *path, int datasync, struct fuse_file_info *fi) {
  REQ(OP_FSYNC); r.path = path; r.flags = datasync; r.fi = fi;
  return call_js(&r);
}

/* Without it the kernel takes fsync(2) of a directory as done (ENOSYS: it stops asking). */
static int fn_fsyncdir (const char *path, int datasync, struct fuse_file_info *fi) {
  REQ(OP_FSYNCDIR); r.path = path; r.flags = datasync; r.fi = fi;
  return call_js(&r);
}

static int fn_flock (const char *path, struct fuse_file_info *fi, int op);

static int fn_release (const char *path, struct fuse_file_info *fi) {
  mount_t *m = (mount_t *) fuse_get_context()->private_data;
  /* The kernel sets FUSE_RELEASE_FLOCK_UNLOCK on the last close of a file description that
     took a BSD lock; libfuse 2.9's high-level layer only copies it into fi->flock_release, so
     the unlock is done here, with the release's lock_owner, before release itself. */
  if (fi->flock_release && m->implemented[OP_FLOCK]) fn_flock(path, fi, LOCK_UN);
  if (!m->implemented[OP_RELEASE]) return 0;
  REQ(OP_RELEASE); r.path = path; r.fi = fi;
  return call_js(&r);
}

static int fn_truncate (const char *path, off_t size) {
  REQ(OP_TRUNCATE); r.path = path; r.off = size;
  return call_js(&r); /* (stores: fenced by chan_receive) */
}

static int fn_ftruncate (const char *path, off_t size, struct fuse_file_info *fi) {
  REQ(OP_FTRUNCATE); r.path = path; r.off = size; r.fi = fi;
  return call_js(&r); /* (stores: fenced by chan_receive) */
}

static int fn_utimens (const char *path, const struct timespec tv[2]) {
  REQ(OP_UTIMENS); r.path = path;
  struct timespec now;
  int have_now = 0;
  for (int i = 0; i < 2; i++) {
    if (tv == NULL || tv[i].tv_nsec == UTIME_NOW) {
      if (!have_now) { clock_gettime(CLOCK_REALTIME, &now); have_now = 1; }
      r.tv[i] = now;
    } else if (tv[i].tv_nsec == UTIME_OMIT) {
      r.omit[i] = 1;
    } else {
      r.tv[i] = tv[i];
    }
  }
  if (r.omit[0] && r.omit[1]) return 0;
  return call_js(&r);
}

static int fn_chmod (const char *path, mode_t mode) {
  REQ(OP_CHMOD); r.path = path; r.mode = mode;
  return call_js(&r);
}

static int fn_chown (const char *path, uid_t uid, gid_t gid) {
  REQ(OP_CHOWN); r.path = path; r.uid = uid; r.gid = gid;
  return call_js(&r);
}

static int fn_unlink (const char *path) {
  REQ(OP_UNLINK); r.path = path;
  return call_js(&r);
}

static int fn_rename (const char *src, const char *dest) {
  mount_t *m = (mount_t *) fuse_get_context()->private_data;
  if (hides_rename_target(src, dest) && m->implemented[OP_LINK]) {
    /* rename(a, b) while b is open: libfuse first moves b to a .fuse_hidden name, then renames
       a to b, and between the two b does not exist. Linking b to the hidden name instead keeps b
       in place; the rename that follows then replaces it in one step, as rename(2) must. (For
       unlink of an open file the hidden name must be a real rename: there cur_opcode is UNLINK.) */
    REQ(OP_LINK); r.path = src; r.path2 = dest;
    return call_js(&r);
  }
  REQ(OP_RENAME); r.path = src; r.path2 = dest;
  return call_js(&r);
}

static int fn_link (const char *src, const char *dest) {
  mount_t *m = (mount_t *) fuse_get_context()->private_data;
  REQ(OP_LINK); r.path = src; r.path2 = dest;
  int res = call_js(&r);
  /* The existing name's kernel inode still has the old link count cached (see uncache_shared_inode). */
  if (res == 0 && cur_opcode == RAW_LINK && cur_link_from != 0 && m->ch != NULL) {
    fuse_lowlevel_notify_inval_inode(m->ch, (fuse_ino_t) cur_link_from, -1, 0);
  }
  return res;
}

static int fn_symlink (const char *target, const char *path) {
  REQ(OP_SYMLINK); r.path = target; r.path2 = path;
  return call_js(&r);
}

static int fn_readlink (const char *path, char *buf, size_t len) {
  if (len == 0) return -EINVAL;
  REQ(OP_READLINK); r.path = path; r.buf = buf; r.len = len;
  return call_js(&r);
}

static int fn_mkdir (const char *path, mode_t mode) {
  REQ(OP_MKDIR); r.path = path; r.mode = mode;
  return call_js(&r);
}

static int fn_rmdir (const char *path) {
  REQ(OP_RMDIR); r.path = path;
  return call_js(&r);
}

static int fn_setxattr (const char *path, const char *name, const char *value, size_t size,
                        int flags) {
  REQ(OP_SETXATTR); r.path = path; r.name = name; r.cbuf = value; r.len = size; r.flags = flags;
  return call_js(&r);
}

/* Attributes gfs never stores (the adapter refuses to set them, EOPNOTSUPP), answered here without
   a round trip to JS: security.capability, which the kernel asks for before every write(2) (to drop
   file capabilities); POSIX ACLs and the SELinux label, which `ls -l` asks for of every entry.
   The answer is EOPNOTSUPP too, as on a file system without ACL or SELinux support: `ls` then
   stops asking for the rest of the device (coreutils remembers the st_dev that answered it), where
   ENODATA ("this file has none") cost it two kernel round trips per entry, a third of an `ls -lR`.
   The kernel takes either as "no capabilities". */
static const char *const never_stored[] = {
  "security.capability", "security.selinux", "system.posix_acl_access", "system.posix_acl_default",
};

static int never_stored_name (const char *name) {
  for (size_t i = 0; i < sizeof(never_stored) / sizeof(never_stored[0]); i++) {
    if (strcmp(name, never_stored[i]) == 0) return 1;
  }
  return 0;
}

static int fn_getxattr (const char *path, const char *name, char *value, size_t size) {
  if (never_stored_name(name)) return -EOPNOTSUPP;
  REQ(OP_GETXATTR); r.path = path; r.name = name; r.buf = value; r.len = size;
  return call_js(&r);
}

static int fn_listxattr (const char *path, char *list, size_t size) {
  REQ(OP_LISTXATTR); r.path = path; r.buf = list; r.len = size;
  return call_js(&r);
}

static int fn_removexattr (const char *path, const char *name) {
  REQ(OP_REMOVEXATTR); r.path = path; r.name = name;
  return call_js(&r);
}

/* After a lock is granted, drop the kernel's cached pages of the file: another mount may have
   written it under the lock held before, and the new holder must read that (NFS does the same). */
static void invalidate_locked_inode (mount_t *m) {
  if ((cur_opcode == RAW_SETLK || cur_opcode == RAW_SETLKW) && cur_nodeid != 0 && m->ch != NULL) {
    fuse_lowlevel_notify_inval_inode(m->ch, (fuse_ino_t) cur_nodeid, 0, 0);
  }
}

static int fn_lock (const char *path, struct fuse_file_info *fi, int cmd, struct flock *lk) {
  mount_t *m = (mount_t *) fuse_get_context()->private_data;
  /* libfuse calls this with F_UNLCK on every close (flush), in case the closing owner held record
     locks: a round trip to JS on each close(2) (~70 us). While this mount has never been asked
     for a lock there is nothing to release, and unlocking what is not locked succeeds anyway. */
  if (lk->l_type == F_UNLCK && cmd != F_GETLK) {
    if (!__atomic_load_n(&m->locks_asked, __ATOMIC_ACQUIRE)) return 0;
  } else if (cmd != F_GETLK) {
    __atomic_store_n(&m->locks_asked, 1, __ATOMIC_RELEASE);
  }
  REQ(OP_LOCK); r.path = path; r.fi = fi; r.cmd = cmd; r.lk = lk; r.blocking = cmd == F_SETLKW;
  int res = call_js(&r);
  if (res == 0 && cmd != F_GETLK && lk->l_type != F_UNLCK) invalidate_locked_inode(m);
  return res;
}

static int fn_flock (const char *path, struct fuse_file_info *fi, int op) {
  mount_t *m = (mount_t *) fuse_get_context()->private_data;
  REQ(OP_FLOCK); r.path = path; r.fi = fi; r.flags = op;
  r.blocking = (op & (LOCK_NB | LOCK_UN)) == 0;
  int res = call_js(&r);
  if (res == 0 && (op & LOCK_UN) == 0) invalidate_locked_inode(m);
  return res;
}

static void *fn_init (struct fuse_conn_info *conn) {
  mount_t *m = (mount_t *) fuse_get_context()->private_data;
  REQ(OP_INIT);
  /* Ask for what we rely on even if an option was forgotten; the kernel grants what it can. */
  conn->want |= FUSE_CAP_BIG_WRITES;
  cur_init_killpriv = m->clears_set_id; /* for answer_init, on this thread */
  cur_init_plus = m->readdir_plus;
  call_js(&r);
  return m; /* becomes fuse_get_context()->private_data for every later call */
}

/* ------------------------------------------------------------------------------------------ */
/* JS side: dispatch queued requests.                                                         */

static int64_t slot_alloc (mount_t *m, request_t *r, uint32_t *seq_out) {
  uint32_t i;
  for (i = 0; i < m->nslots; i++) {
    if (m->slots[i].req == NULL) break;
  }
  if (i == m->nslots) {
    uint32_t n = m->nslots ? m->nslots * 2 : 16;
    slot_t *s = realloc(m->slots, n * sizeof(slot_t));
    if (s == NULL) return -1;
    memset(s + m->nslots, 0, (n - m->nslots) * sizeof(slot_t));
    m->slots = s;
    m->nslots = n;
  }
  m->seq++;
  if (m->seq == 0) m->seq = 1;
  m->slots[i].req = r;
  m->slots[i].seq = m->seq;
  m->slots[i].buf_ref = NULL;
  m->slots[i].interrupt_sent = 0;
  *seq_out = m->seq;
  return i;
}

/* Detaches the external Buffer over libfuse's memory so JS can never touch it after the reply. */
static void slot_release_buffer (mount_t *m, slot_t *s) {
  if (s->buf_ref == NULL) return;
  napi_env env = m->env;
  napi_value buf;
  if (napi_get_reference_value(env, s->buf_ref, &buf) == napi_ok && buf != NULL) {
    napi_value ab;
    if (napi_get_typedarray_info(env, buf, NULL, NULL, NULL, &ab, NULL) == napi_ok) {
      napi_detach_arraybuffer(env, ab);
    }
  }
  napi_delete_reference(env, s->buf_ref);
  s->buf_ref = NULL;
}

static void complete (mount_t *m, uint32_t slot, int res) {
  slot_t *s = &m->slots[slot];
  request_t *r = s->req;
  slot_release_buffer(m, s);
  s->req = NULL;
  if (!r->answered) names_forget(m, r); /* (answer_early dropped it as it answered) */
  r->res = res;
  uv_sem_post(&r->sem); /* r may be gone as soon as this returns */
}

/* Builds the JS arguments of one request. Returns the argument count or -1. */
static int build_args (mount_t *m, request_t *r, slot_t *s, napi_value *argv) {
  napi_env env = m->env;
  int n = 0;
  uint64_t fh = r->fi ? r->fi->fh : 0;

  switch (r->op) {
    case OP_INIT:
      break;
    case OP_GETATTR:
    case OP_STATFS:
    case OP_READDIR:
    case OP_UNLINK:
    case OP_RMDIR:
    case OP_READLINK:
      argv[n++] = make_str(env, r->path);
      break;
    case OP_FGETATTR:
    case OP_FLUSH:
    case OP_RELEASE:
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_num(env, (double) fh);
      break;
    case OP_ACCESS:
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_num(env, r->flags);
      break;
    case OP_OPEN:
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_num(env, r->flags);
      break;
    case OP_CREATE:
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_num(env, r->mode);
      argv[n++] = make_num(env, r->flags);
      break;
    case OP_READ:
    case OP_WRITE: {
      napi_value buf;
      char *data = r->op == OP_READ ? r->buf : (char *) r->cbuf;
      if (r->len == 0) {
        if (napi_create_buffer(env, 0, NULL, &buf) != napi_ok) return -1;
      } else {
        if (napi_create_external_buffer(env, r->len, data, NULL, NULL, &buf) != napi_ok) return -1;
        if (napi_create_reference(env, buf, 1, &s->buf_ref) != napi_ok) return -1;
      }
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_num(env, (double) fh);
      argv[n++] = buf;
      argv[n++] = make_num(env, (double) r->len);
      argv[n++] = make_num(env, (double) r->off);
      break;
    }
    case OP_FSYNC:
    case OP_FSYNCDIR:
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_bool(env, r->flags);
      argv[n++] = make_num(env, (double) fh);
      break;
    case OP_TRUNCATE:
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_num(env, (double) r->off);
      break;
    case OP_FTRUNCATE:
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_num(env, (double) fh);
      argv[n++] = make_num(env, (double) r->off);
      break;
    case OP_UTIMENS:
      argv[n++] = make_str(env, r->path);
      argv[n++] = r->omit[0] ? make_null(env) : make_timespec(env, &r->tv[0]);
      argv[n++] = r->omit[1] ? make_null(env) : make_timespec(env, &r->tv[1]);
      break;
    case OP_CHMOD:
    case OP_MKDIR:
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_num(env, r->mode);
      break;
    case OP_CHOWN:
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_num(env, r->uid);
      argv[n++] = make_num(env, r->gid);
      break;
    case OP_RENAME:
    case OP_LINK:
    case OP_SYMLINK:
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_str(env, r->path2);
      break;
    case OP_SETXATTR: {
      napi_value val;
      void *copy;
      if (napi_create_buffer_copy(env, r->len, r->cbuf, &copy, &val) != napi_ok) return -1;
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_str(env, r->name);
      argv[n++] = val;
      argv[n++] = make_num(env, r->flags);
      break;
    }
    case OP_GETXATTR:
    case OP_REMOVEXATTR:
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_str(env, r->name);
      break;
    case OP_LISTXATTR:
      argv[n++] = make_str(env, r->path);
      break;
    case OP_LOCK: {
      napi_value lk;
      napi_create_object(env, &lk);
      napi_set_named_property(env, lk, "type", make_num(env, r->lk->l_type));
      napi_set_named_property(env, lk, "whence", make_num(env, r->lk->l_whence));
      napi_set_named_property(env, lk, "start", make_num(env, (double) r->lk->l_start));
      napi_set_named_property(env, lk, "len", make_num(env, (double) r->lk->l_len));
      napi_set_named_property(env, lk, "pid", make_num(env, r->lk->l_pid));
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_num(env, (double) fh);
      argv[n++] = make_num(env, r->cmd);
      argv[n++] = lk;
      argv[n++] = make_bigint_u64(env, r->fi ? r->fi->lock_owner : 0);
      break;
    }
    case OP_FLOCK:
      argv[n++] = make_str(env, r->path);
      argv[n++] = make_num(env, (double) fh);
      argv[n++] = make_num(env, r->flags);
      argv[n++] = make_bigint_u64(env, r->fi ? r->fi->lock_owner : 0);
      break;
    default:
      return -1;
  }
  return n;
}

static void on_work (uv_async_t *handle) {
  mount_t *m = (mount_t *) handle->data;
  napi_env env = m->env;
  pin_js();

  uv_mutex_lock(&m->qlock);
  request_t *r = m->qhead;
  m->qhead = m->qtail = NULL;
  uv_mutex_unlock(&m->qlock);

  while (r != NULL) {
    request_t *next = r->next; /* read before r can be completed and vanish */
    uint32_t seq = 0;
    int64_t slot = slot_alloc(m, r, &seq);
    if (slot < 0) {
      r->res = -ENOMEM;
      uv_sem_post(&r->sem);
      r = next;
      continue;
    }

    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);

    napi_value argv[18];
    napi_value fn, recv, result;
    argv[0] = make_num(env, r->op);
    argv[1] = make_num(env, (double) slot);
    argv[2] = make_num(env, seq);
    argv[3] = make_num(env, r->caller_uid);
    argv[4] = make_num(env, r->caller_gid);
    argv[5] = make_num(env, r->caller_pid);
    argv[6] = make_bool(env, r->kill_privs);
    int n = build_args(m, r, &m->slots[slot], argv + 7);
    napi_status status = napi_generic_failure;
    if (n >= 0 && napi_get_reference_value(env, m->dispatch, &fn) == napi_ok && fn != NULL) {
      napi_get_global(env, &recv); /* napi_make_callback needs an object receiver */
      status = napi_make_callback(env, m->async_ctx, recv, fn, (size_t) n + 7, argv, &result);
    }
    if (status != napi_ok) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value err;
        napi_get_and_clear_last_exception(env, &err);
        fprintf(stderr, "fuse-native: dispatch of %s threw; replying EIO\n", OP_NAMES[r->op]);
      }
      /* Only complete it if JS did not already reply (r may be gone otherwise). */
      if (m->slots[slot].req == r && m->slots[slot].seq == seq) complete(m, (uint32_t) slot, -EIO);
    }
    napi_close_handle_scope(env, scope);
    r = next;
  }

  /* Interrupted lock waits (see call_js): dispatch(OP_COUNT, slot, seq) tells JS to give up. */
  for (uint32_t i = 0; i < m->nslots; i++) {
    slot_t *sl = &m->slots[i];
    if (sl->req == NULL || sl->interrupt_sent || !__atomic_load_n(&sl->req->interrupted, __ATOMIC_ACQUIRE)) continue;
    sl->interrupt_sent = 1;
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value argv[6], fn, recv, result;
    argv[0] = make_num(env, OP_COUNT);
    argv[1] = make_num(env, i);
    argv[2] = make_num(env, sl->seq);
    argv[3] = make_num(env, sl->req->caller_uid);
    argv[4] = make_num(env, sl->req->caller_gid);
    argv[5] = make_num(env, sl->req->caller_pid);
    if (napi_get_reference_value(env, m->dispatch, &fn) == napi_ok && fn != NULL) {
      napi_get_global(env, &recv);
      if (napi_make_callback(env, m->async_ctx, recv, fn, 6, argv, &result) != napi_ok) {
        bool pending = false;
        napi_is_exception_pending(env, &pending);
        if (pending) {
          napi_value err;
          napi_get_and_clear_last_exception(env, &err);
        }
      }
    }
    napi_close_handle_scope(env, scope);
  }
}

/* A read's reply may carry bytes to store into the kernel's cache: (pieces: Buffer[], offset).
   The array is kept referenced (and with it the pieces) until the store is done. NULL: none. */
static store_job_t *make_store (mount_t *m, uint64_t nodeid, napi_value pieces, napi_value offset) {
  napi_env env = m->env;
  bool is_arr = false;
  uint32_t count = 0;
  double off = -1;
  if (m->stores == NULL || nodeid == 0) return NULL;
  if (napi_is_array(env, pieces, &is_arr) != napi_ok || !is_arr) return NULL;
  if (napi_get_array_length(env, pieces, &count) != napi_ok || count == 0 || count > PAGE_STORE_MAX_PIECES) return NULL;
  if (napi_get_value_double(env, offset, &off) != napi_ok || !(off >= 0 && off < 9007199254740992.0)) return NULL;
  store_job_t *job = calloc(1, sizeof(store_job_t));
  struct iovec *iov = calloc(count, sizeof(struct iovec));
  if (job == NULL || iov == NULL) goto fail;
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    bool is_buf = false;
    if (napi_get_element(env, pieces, i, &v) != napi_ok) goto fail;
    if (napi_is_buffer(env, v, &is_buf) != napi_ok || !is_buf) goto fail;
    if (napi_get_buffer_info(env, v, &iov[i].iov_base, &iov[i].iov_len) != napi_ok) goto fail;
    job->len += iov[i].iov_len;
  }
  job->nodeid = nodeid;
  job->off = (uint64_t) off;
  job->iov = iov;
  job->iovcnt = (int) count;
  if (job->len == 0) goto fail;
  if (napi_create_reference(env, pieces, 1, (napi_ref *) &job->owner) != napi_ok) goto fail;
  if (!page_store_begin(m->stores, job)) {
    napi_delete_reference(env, (napi_ref) job->owner);
    goto fail;
  }
  return job;
fail:
  free(iov);
  free(job);
  return NULL;
}

/* Stores finished: what kept their bytes alive goes. */
static void on_stored (uv_async_t *handle) {
  mount_t *m = (mount_t *) handle->data;
  store_job_t *job = page_store_take_done(m->stores);
  while (job != NULL) {
    store_job_t *next = job->next;
    napi_delete_reference(m->env, (napi_ref) job->owner);
    free(job->iov);
    free(job);
    job = next;
  }
}

/* A successful write or flush is answered to the kernel from the JS thread itself, before the
   worker that waits for it is woken: the caller goes on one thread hand-off sooner (the worker's
   wake-up, then its write to the device; each a switch, and on this machine kind often a wake-up of
   an idle CPU). libfuse does nothing for them after our callback that the kernel must see first:
   a write's answer is its count; a flush's is followed only by the unlock of the closing owner's
   record locks, answered in C (fn_lock) while none was ever asked for, which is the only case
   answered early (with locks in use, close must not return before the unlock). What the request
   may change is dropped from the names cache before the answer goes, as complete() would after
   (a stat right after the write must not be answered from a listing). The worker's own answer is
   then not sent (chan_send, cur_answered). */
static void answer_early (mount_t *m, request_t *r, int32_t res) {
  if (r->unique == 0 || m->ch == NULL) return;
  struct raw_out_header out = { 0, 0, r->unique };
  struct { uint32_t size; uint32_t padding; } wrote = { (uint32_t) res, 0 }; /* struct fuse_write_out */
  struct iovec iov[2] = { { &out, sizeof(out) }, { &wrote, sizeof(wrote) } };
  int n = r->op == OP_WRITE ? 2 : 1;
  out.len = (uint32_t) (sizeof(out) + (n == 2 ? sizeof(wrote) : 0));
  names_forget(m, r);
  /* ENOENT: the request was interrupted and the kernel no longer waits for it. Either way the
     worker must not answer it again. */
  if (writev(fuse_chan_fd(m->ch), iov, n) == -1 && errno != ENOENT) return;
  r->answered = 1;
  m->answered_early++;
}

/* answeredEarly(mount) -> how many writes and flushes were answered from the JS thread (tests). */
static napi_value js_answered_early (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  mount_t *m;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) { throw_error(env, "answeredEarly: expected (mount)"); return NULL; }
  NAPI_OK(napi_get_value_external(env, argv[0], (void **) &m));
  return make_num(env, m->answered_early);
napi_fail:
  throw_error(env, "answeredEarly: bad arguments");
  return NULL;
}

/* kernelRequests(mount, opcode) -> how many requests with that FUSE opcode came from the kernel (tests). */
static napi_value js_kernel_requests (napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  mount_t *m;
  uint32_t opcode;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) { throw_error(env, "kernelRequests: expected (mount, opcode)"); return NULL; }
  NAPI_OK(napi_get_value_external(env, argv[0], (void **) &m));
  NAPI_OK(napi_get_value_uint32(env, argv[1], &opcode));
  return make_num(env, opcode < KERNEL_OPCODES ? (double) __atomic_load_n(&m->kernel_requests[opcode], __ATOMIC_RELAXED) : 0);
napi_fail:
  throw_error(env, "kernelRequests: bad arguments");
  return NULL;
}

static void give_back_aligned (napi_env env, void *data, void *hint) {
  aligned_pool_give(data, (size_t)(uintptr_t)hint);
}

/* alignedBuffer(bytes) -> Buffer of that many bytes at a page-aligned address, from aligned-pool.h
   (uninitialized; its memory goes back to the pool once the garbage collector drops it), or null
   when bytes is over the pool's largest block. */
static napi_value js_aligned_buffer (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  uint32_t bytes;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) { throw_error(env, "alignedBuffer: expected (bytes)"); return NULL; }
  NAPI_OK(napi_get_value_uint32(env, argv[0], &bytes));
  size_t capacity = 0;
  void *mem = bytes > 0 ? aligned_pool_take(bytes, &capacity) : NULL;
  if (mem == NULL) {
    napi_get_null(env, &out);
    return out;
  }
  if (napi_create_external_buffer(env, bytes, mem, give_back_aligned, (void *)(uintptr_t)capacity, &out) != napi_ok) {
    aligned_pool_give(mem, capacity);
    goto napi_fail;
  }
  return out;
napi_fail:
  throw_error(env, "alignedBuffer: bad arguments");
  return NULL;
}

/* alignedPoolCounts() -> [reused, made, keptBytes] (aligned-pool.h; tests look at them) */
static napi_value js_aligned_pool_counts (napi_env env, napi_callback_info info) {
  uint64_t reused, made;
  size_t kept;
  aligned_pool_counts(&reused, &made, &kept);
  napi_value out;
  napi_create_array_with_length(env, 3, &out);
  napi_set_element(env, out, 0, make_num(env, (double) reused));
  napi_set_element(env, out, 1, make_num(env, (double) made));
  napi_set_element(env, out, 2, make_num(env, (double) kept));
  return out;
}

/* waitsOnRequest(pid) -> boolean: the process sleeps waiting for a FUSE request's answer (proc-state.h) */
static napi_value js_waits_on_request (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t pid;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) { throw_error(env, "waitsOnRequest: expected (pid)"); return NULL; }
  NAPI_OK(napi_get_value_uint32(env, argv[0], &pid));
  return make_bool(env, proc_state_of(pid) == PROC_ON_REQUEST);
napi_fail:
  throw_error(env, "waitsOnRequest: bad arguments");
  return NULL;
}

/* reply(mount, slot, seq, result, extra1?, extra2?) -> boolean (false: stale or duplicate) */
static napi_value js_reply (napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_value undef;
  napi_get_undefined(env, &undef);
  for (int i = 0; i < 6; i++) argv[i] = undef;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) { throw_error(env, "reply: expected (mount, slot, seq, result, ...)"); return NULL; }

  mount_t *m;
  NAPI_OK(napi_get_value_external(env, argv[0], (void **) &m));
  uint32_t slot, seq;
  int32_t res;
  NAPI_OK(napi_get_value_uint32(env, argv[1], &slot));
  NAPI_OK(napi_get_value_uint32(env, argv[2], &seq));
  if (napi_get_value_int32(env, argv[3], &res) != napi_ok) res = -EIO;

  if (slot >= m->nslots || m->slots[slot].req == NULL || m->slots[slot].seq != seq) {
    return make_bool(env, 0);
  }
  request_t *r = m->slots[slot].req;

  switch (r->op) {
    case OP_GETATTR:
    case OP_FGETATTR:
      if (res == 0) {
        double *a = get_f64(env, argv[4], ST_LEN);
        if (a) fill_stat(r->st, a); else res = -EIO;
      }
      break;
    case OP_STATFS:
      if (res == 0) {
        double *a = get_f64(env, argv[4], SFS_LEN);
        if (a) fill_statvfs(r->sfs, a); else res = -EIO;
      }
      break;
    case OP_READDIR:
      if (res == 0) {
        bool is_arr = false;
        uint32_t count = 0;
        if (napi_is_array(env, argv[4], &is_arr) != napi_ok || !is_arr) { res = -EIO; break; }
        napi_get_array_length(env, argv[4], &count);
        double *stats = get_f64(env, argv[5], ST_LEN * (size_t) count); /* a struct stat per name */
        for (uint32_t i = 0; i < count; i++) {
          napi_value v;
          if (napi_get_element(env, argv[4], i, &v) != napi_ok) continue;
          char *name = get_string(env, v);
          if (name == NULL) continue;
          int full;
          if (stats) {
            struct stat st;
            fill_stat(&st, stats + (size_t) i * ST_LEN);
            /* Not "." and "..", and not a hard-linked file (its attributes are per inode, and
               each of its names is a kernel inode of its own: see uncache_shared_inode). */
            if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && !(S_ISREG(st.st_mode) && st.st_nlink > 1)) {
              names_put(m->names, r->names_epoch, r->path, name, &st);
            }
            full = r->filler(r->dirbuf, name, &st, 0); /* d_type from st_mode, d_ino (use_ino) */
          } else {
            full = r->filler(r->dirbuf, name, NULL, 0);
          }
          free(name);
          if (full) break;
        }
      }
      break;
    case OP_OPEN:
    case OP_CREATE:
      if (res >= 0) {
        double fh = 0;
        napi_valuetype t;
        if (napi_typeof(env, argv[4], &t) == napi_ok && t == napi_number) {
          napi_get_value_double(env, argv[4], &fh);
        }
        r->fi->fh = (isfinite(fh) && fh > 0 && fh < 18446744073709551616.0) ? (uint64_t) fh : 0;
        bool kept = false;
        if (r->op == OP_OPEN && napi_typeof(env, argv[5], &t) == napi_ok && t == napi_boolean) napi_get_value_bool(env, argv[5], &kept);
        r->attrs_kept = kept;
        if (r->op == OP_CREATE && r->st != NULL) {
          double *a = get_f64(env, argv[5], ST_LEN);
          if (a) { fill_stat(r->st, a); r->made_st = 1; }
        }
        res = 0;
      }
      break;
    case OP_READ:
      if (res > (int32_t) r->len) res = (int32_t) r->len;
      if (res >= 0) r->store = make_store(m, r->nodeid, argv[4], argv[5]);
      break;
    case OP_WRITE:
      if (res > (int32_t) r->len) res = (int32_t) r->len;
      if (res >= 0) answer_early(m, r, res);
      break;
    case OP_FLUSH:
      if (res == 0 && !__atomic_load_n(&m->locks_asked, __ATOMIC_ACQUIRE)) answer_early(m, r, res);
      break;
    case OP_READLINK:
      if (res == 0) {
        char *target = get_string(env, argv[4]);
        if (target == NULL) { res = -EIO; break; }
        strncpy(r->buf, target, r->len - 1);
        r->buf[r->len - 1] = '\0';
        free(target);
      }
      break;
    case OP_GETXATTR:
    case OP_LISTXATTR:
      if (res >= 0) {
        const char *data;
        size_t len;
        if (get_bytes(env, argv[4], &data, &len) != 0) { res = -EIO; break; }
        if (r->len == 0) {
          res = (int32_t) len;           /* size query */
        } else if (len > r->len) {
          res = -ERANGE;
        } else {
          memcpy(r->buf, data, len);
          res = (int32_t) len;
        }
      }
      break;
    case OP_LOCK:
      if (res == 0 && r->cmd == F_GETLK) {
        double *a = get_f64(env, argv[4], LK_LEN_FIELDS);
        if (a) {
          r->lk->l_type = (short) num(a[LK_TYPE]);
          r->lk->l_whence = (short) num(a[LK_WHENCE]);
          r->lk->l_start = (off_t) num(a[LK_START]);
          r->lk->l_len = (off_t) num(a[LK_LEN]);
          r->lk->l_pid = (pid_t) num(a[LK_PID]);
        } else {
          r->lk->l_type = F_UNLCK;
        }
      }
      if (res > 0) res = 0;
      break;
    default:
      if (res > 0) res = 0;
      break;
  }

  complete(m, slot, res);
  return make_bool(env, 1);

napi_fail:
  throw_error(env, "reply: bad arguments");
  return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Mount lifecycle                                                                            */

static void maybe_free (mount_t *m) {
  if (!m->finalized || m->handles_open > 0) return;
  if (m->thread_started && !m->thread_finished) return; /* still in use: leak rather than crash */
  uv_mutex_destroy(&m->qlock);
  names_free(m->names);
  page_store_free(m->stores);
  free(m->slots);
  free(m->mnt);
  free(m);
}

static void on_handle_closed (uv_handle_t *h) {
  mount_t *m = (mount_t *) h->data;
  m->handles_open--;
  maybe_free(m);
}

static void finalize_mount (napi_env env, void *data, void *hint) {
  mount_t *m = (mount_t *) data;
  m->finalized = 1;
  maybe_free(m);
}

static void *mount_thread (void *data) {
  mount_t *m = (mount_t *) data;
  m->loop_result = fuse_loop_mt(m->fuse);
  busy_poll_stop(m->polls); /* no request comes any more */
  m->polls = NULL;
  page_store_stop(m->stores); /* before the device closes: a store must not write to its reuse */
  /* Same order as libfuse's fuse_teardown: unmount (a no-op when the kernel already dropped the
     connection) and destroy the channel, then destroy the session (which may still call unlink
     for .fuse_hidden files; the JS thread keeps serving those). */
  fuse_unmount(m->mnt, m->ch);
  m->ch = NULL;
  fuse_destroy(m->fuse);
  m->fuse = NULL;
  uv_async_send(&m->done);
  return NULL;
}

static void on_done (uv_async_t *handle) {
  mount_t *m = (mount_t *) handle->data;
  napi_env env = m->env;

  pthread_join(m->thread, NULL);
  m->thread_finished = 1;

  /* No request can be pending now: libfuse joined all its workers before the loop returned
     (and they ran or dropped their stores). */
  on_stored(&m->stored);
  uv_close((uv_handle_t *) &m->work, on_handle_closed);
  uv_close((uv_handle_t *) &m->done, on_handle_closed);
  uv_close((uv_handle_t *) &m->stored, on_handle_closed);

  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value fn, recv, result;
  if (m->on_exit && napi_get_reference_value(env, m->on_exit, &fn) == napi_ok && fn != NULL) {
    napi_value argv[1] = { make_num(env, m->loop_result) };
    napi_get_global(env, &recv); /* napi_make_callback needs an object receiver */
    if (napi_make_callback(env, m->async_ctx, recv, fn, 1, argv, &result) != napi_ok) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value err;
        napi_get_and_clear_last_exception(env, &err);
        napi_fatal_exception(env, err);
      }
    }
  }
  napi_close_handle_scope(env, scope);

  /* Drop the strong references so the JS objects (and with them the external) can be collected. */
  if (m->dispatch) { napi_delete_reference(env, m->dispatch); m->dispatch = NULL; }
  if (m->on_exit) { napi_delete_reference(env, m->on_exit); m->on_exit = NULL; }
  if (m->async_ctx) { napi_async_destroy(env, m->async_ctx); m->async_ctx = NULL; }
}

/* Runs fn with libfuse's stderr captured (libfuse reports mount errors only there). */
typedef struct { int saved; int rd; } capture_t;

static void capture_begin (capture_t *c) {
  int fds[2];
  c->saved = -1;
  c->rd = -1;
  fflush(stderr);
  if (pipe(fds) != 0) return;
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  fcntl(fds[1], F_SETFL, O_NONBLOCK); /* never block libfuse if it writes a lot */
  c->saved = dup(STDERR_FILENO);
  if (c->saved < 0) { close(fds[0]); close(fds[1]); return; }
  dup2(fds[1], STDERR_FILENO);
  close(fds[1]);
  c->rd = fds[0];
}

static void capture_end (capture_t *c, char *out, size_t outlen) {
  out[0] = '\0';
  if (c->saved < 0) return;
  fflush(stderr);
  dup2(c->saved, STDERR_FILENO);
  close(c->saved);
  ssize_t n = read(c->rd, out, outlen - 1);
  if (n > 0) {
    out[n] = '\0';
    (void) !write(STDERR_FILENO, out, (size_t) n); /* keep libfuse's message visible */
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r')) out[--n] = '\0';
    for (ssize_t i = 0; i < n; i++) if (out[i] == '\n') out[i] = ' ';
  }
  close(c->rd);
}

/* createMount() -> external handle */
static napi_value js_create (napi_env env, napi_callback_info info) {
  mount_t *m = calloc(1, sizeof(mount_t));
  if (m == NULL) { throw_error(env, "out of memory"); return NULL; }
  m->env = env;
  uv_mutex_init(&m->qlock);
  napi_value ext;
  if (napi_create_external(env, m, finalize_mount, NULL, &ext) != napi_ok) {
    uv_mutex_destroy(&m->qlock);
    free(m);
    throw_error(env, "cannot create mount handle");
    return NULL;
  }
  return ext;
}

/* mount(handle, mountpoint, options: string[], implemented: string[], dispatch, onExit) */
static napi_value js_mount (napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  char *mnt = NULL;
  char **opts = NULL;
  uint32_t nopts = 0;
  struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
  char errbuf[2048];
  char msg[2560];
  mount_t *m = NULL;

  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) { throw_error(env, "mount: expected 6 arguments"); return NULL; }
  NAPI_OK(napi_get_value_external(env, argv[0], (void **) &m));
  if (m->thread_started || m->fuse != NULL) { throw_error(env, "mount: handle already used"); return NULL; }

  mnt = get_string(env, argv[1]);
  if (mnt == NULL) goto napi_fail;

  NAPI_OK(napi_get_array_length(env, argv[2], &nopts));
  opts = calloc(nopts + 2, sizeof(char *));
  if (opts == NULL) goto napi_fail;
  opts[0] = strdup("gfs");
  for (uint32_t i = 0; i < nopts; i++) {
    napi_value v;
    NAPI_OK(napi_get_element(env, argv[2], i, &v));
    opts[i + 1] = get_string(env, v);
    if (opts[i + 1] == NULL) goto napi_fail;
  }

  /* Listings' attributes are kept as long as the kernel keeps attributes (attr_timeout). */
  double attr_timeout = 0;
  for (uint32_t i = 1; i <= nopts; i++) {
    const char *at = strstr(opts[i], "attr_timeout=");
    if (at != NULL && (at == opts[i] || at[-1] == ',')) attr_timeout = strtod(at + 13, NULL);
  }
  if (m->names == NULL && isfinite(attr_timeout) && attr_timeout > 0) m->names = names_new((uint64_t) (attr_timeout * 1e9));
  if (m->stores == NULL) m->stores = page_store_new(stores_done, m); /* NULL (no stores) if memory is short */

  uint32_t nimpl = 0;
  NAPI_OK(napi_get_array_length(env, argv[3], &nimpl));
  for (uint32_t i = 0; i < nimpl; i++) {
    napi_value v;
    NAPI_OK(napi_get_element(env, argv[3], i, &v));
    char *name = get_string(env, v);
    if (name == NULL) goto napi_fail;
    for (int op = 0; op < OP_COUNT; op++) {
      if (strcmp(name, OP_NAMES[op]) == 0) m->implemented[op] = 1;
    }
    if (strcmp(name, "clearsSetId") == 0) m->clears_set_id = 1;
    if (strcmp(name, "pinThreads") == 0) m->pin_threads = 1;
    if (strcmp(name, "readdirPlus") == 0) m->readdir_plus = 1;
    if (strncmp(name, "busyPollUs=", 11) == 0) m->busy_poll_ns = strtoull(name + 11, NULL, 10) * 1000ull;
    free(name);
  }
  m->implemented[OP_INIT] = 1;
  if (!m->implemented[OP_GETATTR]) { throw_error(env, "mount: getattr is required"); goto cleanup; }

  struct fuse_operations ops;
  memset(&ops, 0, sizeof(ops));
  ops.init = fn_init;
  ops.getattr = fn_getattr;
  if (m->implemented[OP_FGETATTR]) ops.fgetattr = fn_fgetattr;
  if (m->implemented[OP_ACCESS]) ops.access = fn_access;
  if (m->implemented[OP_STATFS]) ops.statfs = fn_statfs;
  if (m->implemented[OP_READDIR]) ops.readdir = fn_readdir;
  if (m->implemented[OP_OPEN]) ops.open = fn_open;
  if (m->implemented[OP_CREATE]) ops.create = fn_create;
  if (m->implemented[OP_READ]) ops.read = fn_read;
  if (m->implemented[OP_WRITE]) ops.write = fn_write;
  if (m->implemented[OP_FLUSH]) ops.flush = fn_flush;
  if (m->implemented[OP_FSYNC]) ops.fsync = fn_fsync;
  if (m->implemented[OP_FSYNCDIR]) ops.fsyncdir = fn_fsyncdir;
  if (m->implemented[OP_RELEASE] || m->implemented[OP_FLOCK]) ops.release = fn_release;
  if (m->implemented[OP_TRUNCATE]) ops.truncate = fn_truncate;
  if (m->implemented[OP_FTRUNCATE]) ops.ftruncate = fn_ftruncate;
  if (m->implemented[OP_UTIMENS]) ops.utimens = fn_utimens;
  if (m->implemented[OP_CHMOD]) ops.chmod = fn_chmod;
  if (m->implemented[OP_CHOWN]) ops.chown = fn_chown;
  if (m->implemented[OP_UNLINK]) ops.unlink = fn_unlink;
  if (m->implemented[OP_RENAME]) ops.rename = fn_rename;
  if (m->implemented[OP_LINK]) ops.link = fn_link;
  if (m->implemented[OP_SYMLINK]) ops.symlink = fn_symlink;
  if (m->implemented[OP_READLINK]) ops.readlink = fn_readlink;
  if (m->implemented[OP_MKDIR]) ops.mkdir = fn_mkdir;
  if (m->implemented[OP_RMDIR]) ops.rmdir = fn_rmdir;
  if (m->implemented[OP_SETXATTR]) ops.setxattr = fn_setxattr;
  if (m->implemented[OP_GETXATTR]) ops.getxattr = fn_getxattr;
  if (m->implemented[OP_LISTXATTR]) ops.listxattr = fn_listxattr;
  if (m->implemented[OP_REMOVEXATTR]) ops.removexattr = fn_removexattr;
  if (m->implemented[OP_LOCK]) ops.lock = fn_lock;
  if (m->implemented[OP_FLOCK]) ops.flock = fn_flock;
  ops.flag_utime_omit_ok = 1; /* pass UTIME_OMIT/UTIME_NOW through instead of dropping one-sided updates */

  uv_loop_t *loop;
  napi_value resource_name;
  NAPI_OK(napi_get_uv_event_loop(env, &loop));
  NAPI_OK(napi_create_string_utf8(env, "FuseMount", NAPI_AUTO_LENGTH, &resource_name));
  NAPI_OK(napi_async_init(env, NULL, resource_name, &m->async_ctx));
  NAPI_OK(napi_create_reference(env, argv[4], 1, &m->dispatch));
  NAPI_OK(napi_create_reference(env, argv[5], 1, &m->on_exit));

  args.argc = (int) nopts + 1;
  args.argv = opts;
  args.allocated = 0;

  capture_t cap;
  capture_begin(&cap);
  struct fuse_chan *kern = fuse_mount(mnt, &args);
  struct fuse_chan *ch = NULL;
  struct fuse *fuse = NULL;
  if (kern != NULL) {
    ch = own_channel(kern, m);
    if (ch == NULL) {
      fprintf(stderr, "fuse: cannot set up the channel: %s\n", strerror(errno));
      fuse_unmount(mnt, kern);
    } else {
      fuse_chan_destroy(kern); /* closes only its own descriptor */
    }
  }
  if (ch != NULL) {
    fuse = fuse_new(ch, &args, &ops, sizeof(ops), m);
    if (fuse == NULL) fuse_unmount(mnt, ch);
  }
  capture_end(&cap, errbuf, sizeof(errbuf));
  fuse_opt_free_args(&args); /* frees only what fuse_opt added; opts are ours */

  if (ch == NULL || fuse == NULL) {
    snprintf(msg, sizeof(msg), "%s of %s failed%s%s", ch == NULL ? "fuse_mount" : "fuse_new", mnt,
             errbuf[0] ? ": " : "", errbuf[0] ? errbuf : "");
    throw_error(env, msg);
    goto cleanup;
  }

  m->fuse = fuse;
  m->ch = ch;
  m->mnt = mnt;
  mnt = NULL;

  if (m->pin_threads) pin_init();
  m->polls = busy_poll_start(m->busy_poll_ns);
  uv_async_init(loop, &m->work, on_work);
  m->work.data = m;
  uv_unref((uv_handle_t *) &m->work);
  uv_async_init(loop, &m->done, on_done);
  m->done.data = m; /* stays ref'd: a mounted file system keeps its process alive */
  uv_async_init(loop, &m->stored, on_stored);
  m->stored.data = m;
  uv_unref((uv_handle_t *) &m->stored);
  m->handles_open = 3;

  if (pthread_create(&m->thread, NULL, mount_thread, m) != 0) {
    busy_poll_stop(m->polls);
    m->polls = NULL;
    fuse_unmount(m->mnt, m->ch);
    fuse_destroy(m->fuse);
    m->fuse = NULL;
    m->ch = NULL;
    uv_close((uv_handle_t *) &m->work, on_handle_closed);
    uv_close((uv_handle_t *) &m->done, on_handle_closed);
    uv_close((uv_handle_t *) &m->stored, on_handle_closed);
    throw_error(env, "mount: cannot start the FUSE thread");
    goto cleanup;
  }
  m->thread_started = 1;

cleanup:
  if (m != NULL && !m->thread_started) {
    if (m->dispatch) { napi_delete_reference(env, m->dispatch); m->dispatch = NULL; }
    if (m->on_exit) { napi_delete_reference(env, m->on_exit); m->on_exit = NULL; }
    if (m->async_ctx) { napi_async_destroy(env, m->async_ctx); m->async_ctx = NULL; }
  }
  if (opts) {
    for (uint32_t i = 0; i < nopts + 1; i++) free(opts[i]);
    free(opts);
  }
  free(mnt);
  return NULL;

napi_fail: {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) throw_error(env, "mount: bad arguments");
    goto cleanup;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Module                                                                                     */

static napi_value init_module (napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "createMount", NULL, js_create, NULL, NULL, NULL, napi_enumerable, NULL },
    { "mount", NULL, js_mount, NULL, NULL, NULL, napi_enumerable, NULL },
    { "reply", NULL, js_reply, NULL, NULL, NULL, napi_enumerable, NULL },
    { "answeredEarly", NULL, js_answered_early, NULL, NULL, NULL, napi_enumerable, NULL },
    { "kernelRequests", NULL, js_kernel_requests, NULL, NULL, NULL, napi_enumerable, NULL },
    { "alignedBuffer", NULL, js_aligned_buffer, NULL, NULL, NULL, napi_enumerable, NULL },
    { "alignedPoolCounts", NULL, js_aligned_pool_counts, NULL, NULL, NULL, napi_enumerable, NULL },
    { "waitsOnRequest", NULL, js_waits_on_request, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);

  napi_value names;
  napi_create_array_with_length(env, OP_COUNT, &names);
  for (int i = 0; i < OP_COUNT; i++) napi_set_element(env, names, i, make_str(env, OP_NAMES[i]));
  napi_set_named_property(env, exports, "opNames", names);
  napi_set_named_property(env, exports, "statLength", make_num(env, ST_LEN));
  napi_set_named_property(env, exports, "statfsLength", make_num(env, SFS_LEN));
  napi_set_named_property(env, exports, "lockLength", make_num(env, LK_LEN_FIELDS));
  napi_set_named_property(env, exports, "interruptOp", make_num(env, OP_COUNT));
  napi_set_named_property(env, exports, "F_GETLK", make_num(env, F_GETLK));
  napi_set_named_property(env, exports, "F_SETLK", make_num(env, F_SETLK));
  napi_set_named_property(env, exports, "F_SETLKW", make_num(env, F_SETLKW));
  napi_set_named_property(env, exports, "fuseVersion", make_num(env, fuse_version()));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init_module)
