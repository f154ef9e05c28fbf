/* Page-aligned buffers for O_DIRECT reads, recycled: see aligned-pool.h. */

#include "aligned-pool.h"

#include <pthread.h>
#include <stdlib.h>

/* A free block holds the link to the next free one of its class in its own first bytes. */
typedef struct free_block {
  struct free_block *next;
} free_block_t;

/* Free blocks per size class (ALIGNED_POOL_MIN_BYTES << class), and what they hold in all. */
static free_block_t *free_blocks[ALIGNED_POOL_CLASSES];
static size_t kept_bytes;
static uint64_t reused_count, made_count;
/* Finalizers may run where the JS thread is not (worker threads have an env of their own). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int class_of (size_t bytes) {
  int c = 0;
  while (c < ALIGNED_POOL_CLASSES - 1 && ((size_t)ALIGNED_POOL_MIN_BYTES << c) < bytes) c++;
  return ((size_t)ALIGNED_POOL_MIN_BYTES << c) >= bytes ? c : -1;
}

void *aligned_pool_take (size_t bytes, size_t *capacity) {
  int c = class_of(bytes);
  if (c < 0) return NULL;
  size_t size = (size_t)ALIGNED_POOL_MIN_BYTES << c;
  pthread_mutex_lock(&lock);
  void *mem = free_blocks[c];
  if (mem != NULL) {
    free_blocks[c] = free_blocks[c]->next;
    kept_bytes -= size;
    reused_count++;
  } else {
    made_count++;
  }
  pthread_mutex_unlock(&lock);
  if (mem == NULL && posix_memalign(&mem, ALIGNED_POOL_ALIGN, size) != 0) return NULL;
  *capacity = size;
  return mem;
}

void aligned_pool_give (void *mem, size_t capacity) {
  int c = class_of(capacity);
  int kept = 0;
  pthread_mutex_lock(&lock);
  if (c >= 0 && kept_bytes + capacity <= ALIGNED_POOL_KEEP_BYTES) {
    free_block_t *b = mem;
    b->next = free_blocks[c];
    free_blocks[c] = b;
    kept_bytes += capacity;
    kept = 1;
  }
  pthread_mutex_unlock(&lock);
  if (!kept) free(mem);
}

void aligned_pool_counts (uint64_t *reused, uint64_t *made, size_t *kept) {
  pthread_mutex_lock(&lock);
  *reused = reused_count;
  *made = made_count;
  *kept = kept_bytes;
  pthread_mutex_unlock(&lock);
}
