/*
 * Attributes from directory listings, by path, answered on the FUSE worker thread.
 *
 * After a listing, `ls -l`, `find` and `du` look every entry up: one LOOKUP each, which the
 * high-level API turns into getattr(path). The JS side answers those from its own attribute cache,
 * but the round trip to the JS thread and back costs ~65 us here, two thirds of an `ls -lR` entry.
 * The listing's reply carries every entry's attributes, so the binding keeps them and answers such
 * getattr calls itself, under the same rules as the JS cache: for attr_timeout from the listing,
 * and only until a request that may change them passes through the mount: a change by path (a
 * write, create, unlink, chmod, open ...) drops that path (a mkdir, rmdir or rename its directory
 * too, a rename or rmdir also everything beneath, as the JS cache does), a lock drops everything.
 * A listing that was under way while any such request came or finished keeps nothing.
 */
#ifndef GFS_NAMES_CACHE_H
#define GFS_NAMES_CACHE_H

#include <stdint.h>
#include <sys/stat.h>

typedef struct names_cache names_cache_t;

/* A cache whose entries live ttl_ns; NULL (every call then does nothing) when ttl_ns is 0 or
   memory is short. */
names_cache_t *names_new (uint64_t ttl_ns);
void names_free (names_cache_t *c);

/* The current generation: note it when a listing starts, pass it to names_put. */
uint64_t names_epoch (names_cache_t *c);
/* Something may have changed anywhere: everything kept is stale. Any thread. */
void names_changed (names_cache_t *c);
/* path may have changed (with dir, its directory too; with tree, everything beneath it). Any thread. */
void names_drop (names_cache_t *c, const char *path, int dir, int tree);
/* A name was made at path, at time: its directory's kept mtime and ctime become time (as the JS
   cache's do: a create answered ahead, whose parent's attributes are kept to save a GETATTR per
   new file, see keep_new_dir). Any thread. */
void names_touch_dir (names_cache_t *c, const char *path, const struct timespec *time);
/* Keep dir/name's attributes, if nothing changed since epoch. */
void names_put (names_cache_t *c, uint64_t epoch, const char *dir, const char *name, const struct stat *st);
/* Fill st from a live entry for path; 1 if there was one. */
int names_get (names_cache_t *c, const char *path, struct stat *st);

#endif
