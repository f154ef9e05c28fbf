/* Attributes from directory listings, by path (see names-cache.h). A chained hash table under one
   mutex. `epoch` counts changes: a listing may put its names only if none came since it began. */

#include "names-cache.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#define BUCKETS 16384u
/* At most this many names (~200 bytes each); a listing past it starts the table over. */
#define MAX_ENTRIES 50000u

typedef struct entry {
  struct entry *next;
  uint64_t expires;       /* CLOCK_MONOTONIC, ns */
  struct stat st;
  char path[];
} entry_t;

struct names_cache {
  uv_mutex_t lock;
  uint64_t ttl_ns;
  uint64_t epoch;         /* bumped (under lock) by every change */
  uint32_t count;
  entry_t *buckets[BUCKETS];
};

static uint64_t now_ns (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* FNV-1a over the path's bytes, and optionally a second part (dir "/" name without joining). */
static uint32_t hash_parts (const char *a, const char *sep, const char *b) {
  uint32_t h = 2166136261u;
  for (const char *p = a; *p; p++) h = (h ^ (uint8_t) *p) * 16777619u;
  if (sep) for (const char *p = sep; *p; p++) h = (h ^ (uint8_t) *p) * 16777619u;
  if (b) for (const char *p = b; *p; p++) h = (h ^ (uint8_t) *p) * 16777619u;
  return h & (BUCKETS - 1);
}

static void clear_locked (names_cache_t *c) {
  if (c->count == 0) return;
  for (uint32_t i = 0; i < BUCKETS; i++) {
    entry_t *e = c->buckets[i];
    while (e) {
      entry_t *next = e->next;
      free(e);
      e = next;
    }
    c->buckets[i] = NULL;
  }
  c->count = 0;
}

names_cache_t *names_new (uint64_t ttl_ns) {
  if (ttl_ns == 0) return NULL;
  names_cache_t *c = calloc(1, sizeof(*c));
  if (c == NULL) return NULL;
  if (uv_mutex_init(&c->lock) != 0) {
    free(c);
    return NULL;
  }
  c->ttl_ns = ttl_ns;
  c->epoch = 1;
  return c;
}

void names_free (names_cache_t *c) {
  if (c == NULL) return;
  clear_locked(c);
  uv_mutex_destroy(&c->lock);
  free(c);
}

uint64_t names_epoch (names_cache_t *c) {
  if (c == NULL) return 0;
  uv_mutex_lock(&c->lock);
  uint64_t e = c->epoch;
  uv_mutex_unlock(&c->lock);
  return e;
}

void names_changed (names_cache_t *c) {
  if (c == NULL) return;
  uv_mutex_lock(&c->lock);
  c->epoch++;
  clear_locked(c);
  uv_mutex_unlock(&c->lock);
}

static void remove_locked (names_cache_t *c, const char *path) {
  entry_t **at = &c->buckets[hash_parts(path, NULL, NULL)];
  for (entry_t *e = *at; e; at = &e->next, e = e->next) {
    if (strcmp(e->path, path) == 0) {
      *at = e->next;
      free(e);
      c->count--;
      return;
    }
  }
}

/* path's directory into parent (PATH_MAX); 0 if path has no slash or it does not fit. */
static int parent_of (const char *path, char *parent) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL) return 0;
  size_t dlen = slash == path ? 1 : (size_t) (slash - path);
  if (dlen >= PATH_MAX) return 0;
  memcpy(parent, path, dlen);
  parent[dlen] = '\0';
  return 1;
}

void names_drop (names_cache_t *c, const char *path, int dir, int tree) {
  if (c == NULL || path == NULL) return;
  uv_mutex_lock(&c->lock);
  c->epoch++;
  if (c->count > 0) {
    size_t len = strlen(path);
    remove_locked(c, path);
    char parent[PATH_MAX];
    if (dir && parent_of(path, parent)) remove_locked(c, parent);
    if (tree) {
      for (uint32_t i = 0; i < BUCKETS && c->count > 0; i++) {
        entry_t **at = &c->buckets[i];
        while (*at) {
          entry_t *e = *at;
          if (strncmp(e->path, path, len) == 0 && (e->path[len] == '/' || (len == 1 && path[0] == '/'))) {
            *at = e->next;
            free(e);
            c->count--;
          } else {
            at = &e->next;
          }
        }
      }
    }
  }
  uv_mutex_unlock(&c->lock);
}

void names_touch_dir (names_cache_t *c, const char *path, const struct timespec *time) {
  char parent[PATH_MAX];
  if (c == NULL || path == NULL || !parent_of(path, parent)) return;
  uv_mutex_lock(&c->lock);
  c->epoch++;
  for (entry_t *e = c->buckets[hash_parts(parent, NULL, NULL)]; e; e = e->next) {
    if (strcmp(e->path, parent) != 0) continue;
    e->st.st_mtim = e->st.st_ctim = *time;
    break;
  }
  uv_mutex_unlock(&c->lock);
}

void names_put (names_cache_t *c, uint64_t epoch, const char *dir, const char *name, const struct stat *st) {
  if (c == NULL) return;
  const char *sep = strcmp(dir, "/") == 0 ? "" : "/";
  size_t dlen = strlen(dir), slen = strlen(sep), nlen = strlen(name);
  uv_mutex_lock(&c->lock);
  if (epoch != c->epoch) goto out; /* something changed meanwhile */
  if (c->count >= MAX_ENTRIES) clear_locked(c);
  uint32_t b = hash_parts(dir, sep, name);
  entry_t *e;
  for (e = c->buckets[b]; e; e = e->next) {
    if (strncmp(e->path, dir, dlen) == 0 && strncmp(e->path + dlen, sep, slen) == 0 && strcmp(e->path + dlen + slen, name) == 0) break;
  }
  if (e == NULL) {
    e = malloc(sizeof(entry_t) + dlen + slen + nlen + 1);
    if (e == NULL) goto out;
    memcpy(e->path, dir, dlen);
    memcpy(e->path + dlen, sep, slen);
    memcpy(e->path + dlen + slen, name, nlen + 1);
    e->next = c->buckets[b];
    c->buckets[b] = e;
    c->count++;
  }
  e->st = *st;
  e->expires = now_ns() + c->ttl_ns;
out:
  uv_mutex_unlock(&c->lock);
}

int names_get (names_cache_t *c, const char *path, struct stat *st) {
  if (c == NULL) return 0;
  int found = 0;
  uv_mutex_lock(&c->lock);
  if (c->count > 0) {
    for (entry_t *e = c->buckets[hash_parts(path, NULL, NULL)]; e; e = e->next) {
      if (strcmp(e->path, path) != 0) continue;
      if (now_ns() < e->expires) {
        *st = e->st;
        found = 1;
      }
      break;
    }
  }
  uv_mutex_unlock(&c->lock);
  return found;
}
