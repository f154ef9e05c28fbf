/* READDIRPLUS made from libfuse's READDIR answers and lookups of our own (readdir-plus.h). */

#include "readdir-plus.h"

#include <errno.h>
#include <linux/fuse.h> /* the kernel ABI; this file sees nothing of libfuse */
#include <stdlib.h>
#include <string.h>

/* The READDIRPLUS this thread serves, between plus_receive and plus_build. */
static __thread struct {
  int on;
  uint64_t unique, nodeid;
  uint32_t uid, gid, pid, size;
} pending;

/* The lookup of our own under way on this thread. */
static __thread struct {
  int on, got;
  uint64_t unique;
  int32_t error;
  struct fuse_entry_out *entry;
} capture;

/* The answer built, until plus_sent: its buffer and the node ids it counted lookups for. */
static __thread struct {
  char *buf;
  uint64_t *nodes;
  size_t count;
  struct fuse_out_header header;
} built;

/* Our own requests' ids: far above the kernel's counter, so never one of its requests. */
static uint64_t own_unique = 1ull << 63;

uint32_t plus_init_flag (uint32_t offered) {
  return offered & FUSE_DO_READDIRPLUS;
}

void plus_receive (char *buf, size_t len) {
  struct fuse_in_header *in = (struct fuse_in_header *) buf;
  if (len < sizeof(*in) + sizeof(struct fuse_read_in) || in->opcode != FUSE_READDIRPLUS) return;
  const struct fuse_read_in *arg = (const struct fuse_read_in *) (buf + sizeof(*in));
  pending.on = 1;
  pending.unique = in->unique, pending.nodeid = in->nodeid;
  pending.uid = in->uid, pending.gid = in->gid, pending.pid = in->pid;
  pending.size = arg->size;
  in->opcode = FUSE_READDIR; /* the same body (struct fuse_read_in) */
}

static const struct fuse_out_header *header_of (const struct iovec *iov, size_t count) {
  if (count < 1 || iov[0].iov_len < sizeof(struct fuse_out_header)) return NULL;
  return (const struct fuse_out_header *) iov[0].iov_base;
}

/* Copies up to len bytes of the answer's body (after the header) to dst; returns how many. */
static size_t body_of (const struct iovec *iov, size_t count, char *dst, size_t len) {
  size_t n = 0;
  for (size_t i = 1; i < count && n < len; i++) {
    size_t take = iov[i].iov_len < len - n ? iov[i].iov_len : len - n;
    memcpy(dst + n, iov[i].iov_base, take);
    n += take;
  }
  return n;
}

int plus_is_own_answer (const struct iovec *iov, size_t count) {
  const struct fuse_out_header *out = header_of(iov, count);
  return capture.on && out != NULL && out->unique == capture.unique;
}

void plus_capture (const struct iovec *iov, size_t count) {
  const struct fuse_out_header *out = header_of(iov, count);
  capture.error = out->error;
  capture.got = out->error == 0 && body_of(iov, count, (char *) capture.entry, sizeof(*capture.entry)) == sizeof(*capture.entry);
}

/* Header and body of a request of our own about node id nodeid, as the pending request's caller. */
static size_t own_request (char *buf, uint32_t opcode, uint64_t nodeid, const void *body, size_t body_len) {
  struct fuse_in_header *h = (struct fuse_in_header *) buf;
  memset(h, 0, sizeof(*h));
  h->len = (uint32_t) (sizeof(*h) + body_len);
  h->opcode = opcode;
  h->unique = __atomic_fetch_add(&own_unique, 1, __ATOMIC_RELAXED);
  h->nodeid = nodeid;
  h->uid = pending.uid, h->gid = pending.gid, h->pid = pending.pid;
  memcpy(buf + sizeof(*h), body, body_len);
  return h->len;
}

/* Looks name up in the pending request's directory through libfuse; entry stays zero if it fails. */
static void look_up (plus_process_fn process, void *ctx, const char *name, uint32_t namelen, struct fuse_entry_out *entry) {
  char req[sizeof(struct fuse_in_header) + 256], body[256];
  if (namelen >= sizeof(body)) return;
  memcpy(body, name, namelen);
  body[namelen] = '\0';
  size_t len = own_request(req, FUSE_LOOKUP, pending.nodeid, body, namelen + 1);
  capture.on = 1, capture.got = 0, capture.entry = entry;
  capture.unique = ((struct fuse_in_header *) req)->unique;
  process(ctx, req, len);
  capture.on = 0;
  if (!capture.got) memset(entry, 0, sizeof(*entry));
}

static int is_dot_or_dotdot (const struct fuse_dirent *d) {
  return (d->namelen == 1 && d->name[0] == '.') || (d->namelen == 2 && d->name[0] == '.' && d->name[1] == '.');
}

int plus_build (const struct iovec *iov, size_t count, plus_process_fn process, void *ctx, struct iovec out[2]) {
  const struct fuse_out_header *oh = header_of(iov, count);
  if (!pending.on || oh == NULL || oh->unique != pending.unique) return 0;
  pending.on = 0;
  size_t total = 0;
  for (size_t i = 1; i < count; i++) total += iov[i].iov_len;
  if (oh->error != 0 || total == 0) return 0; /* an error, or the end of the listing: the same in both */

  char *src = malloc(total);
  built.buf = malloc(pending.size);
  built.nodes = malloc(sizeof(uint64_t) * (total / FUSE_NAME_OFFSET + 1));
  built.count = 0;
  size_t used = 0;
  if (src != NULL && built.buf != NULL && built.nodes != NULL) {
    body_of(iov, count, src, total);
    for (size_t pos = 0; pos + FUSE_NAME_OFFSET <= total;) {
      const struct fuse_dirent *d = (const struct fuse_dirent *) (src + pos);
      size_t reclen = FUSE_DIRENT_SIZE(d);
      size_t plen = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + d->namelen);
      if (pos + reclen > total || used + plen > pending.size) break;
      struct fuse_direntplus *p = (struct fuse_direntplus *) (built.buf + used);
      memset(p, 0, plen);
      if (!is_dot_or_dotdot(d)) look_up(process, ctx, d->name, d->namelen, &p->entry_out);
      if (p->entry_out.nodeid != 0) built.nodes[built.count++] = p->entry_out.nodeid;
      memcpy(&p->dirent, d, FUSE_NAME_OFFSET + d->namelen);
      used += plen;
      pos += reclen;
    }
  }
  free(src);
  built.header = *oh;
  /* Nothing fitted (never so: the kernel asks for a page at least) or no memory: an error, never
     the READDIR answer itself, which the kernel would read as direntplus entries. */
  if (used == 0) built.header.error = -EIO;
  built.header.len = (uint32_t) (sizeof(built.header) + (used == 0 ? 0 : used));
  out[0].iov_base = &built.header, out[0].iov_len = sizeof(built.header);
  out[1].iov_base = built.buf, out[1].iov_len = used == 0 ? 0 : used;
  return 1;
}

void plus_sent (int res, plus_process_fn process, void *ctx) {
  if (res == -ENOENT) { /* interrupted: the kernel linked none of them */
    struct fuse_forget_in forget = { .nlookup = 1 };
    char req[sizeof(struct fuse_in_header) + sizeof(forget)];
    for (size_t i = 0; i < built.count; i++) {
      process(ctx, req, own_request(req, FUSE_FORGET, built.nodes[i], &forget, sizeof(forget)));
    }
  }
  free(built.buf);
  free(built.nodes);
  built.buf = NULL, built.nodes = NULL, built.count = 0;
}
