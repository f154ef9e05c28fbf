/* Renames held back while a process retries a look-up that a rename made fail (retry-gate.h). */

#include "retry-gate.h"

#include <pthread.h>
#include <time.h>

/* Processes retrying at once: more than this is unheard of; beyond it a retry goes unprotected. */
#define SLOTS 16

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed;
static pthread_once_t once = PTHREAD_ONCE_INIT;
/* pid 0: a free slot. until: when the gate opens by itself (CLOCK_MONOTONIC, ns). */
static struct { uint32_t pid, opcode; uint64_t until; } slots[SLOTS];
/* The latest `until` ever set: past it no gate is closed, and requests need not take the lock
   (every open and stat asks gate_retrying). */
static uint64_t latest_until;

static void init (void) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&changed, &a);
  pthread_condattr_destroy(&a);
}

static uint64_t now_ns (void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t) t.tv_sec * 1000000000ull + (uint64_t) t.tv_nsec;
}

/* The slot of pid (or, with take, a free or expired one); -1 if none. Under lock. */
static int slot_of (uint32_t pid, int take, uint64_t now) {
  int spare = -1;
  for (int i = 0; i < SLOTS; i++) {
    if (slots[i].pid == pid) return i;
    if (spare < 0 && (slots[i].pid == 0 || slots[i].until <= now)) spare = i;
  }
  return take ? spare : -1;
}

void gate_close (uint32_t pid, uint32_t opcode) {
  if (pid == 0) return;
  pthread_once(&once, init);
  uint64_t now = now_ns();
  pthread_mutex_lock(&lock);
  int i = slot_of(pid, 1, now);
  if (i >= 0) slots[i].pid = pid, slots[i].opcode = opcode, slots[i].until = now + GATE_HOLD_MS * 1000000ull;
  if (i >= 0 && slots[i].until > latest_until) __atomic_store_n(&latest_until, slots[i].until, __ATOMIC_RELEASE); /* (writers hold the lock) */
  pthread_mutex_unlock(&lock);
}

int gate_retrying (uint32_t pid, uint32_t opcode) {
  if (pid == 0) return 0;
  uint64_t now = now_ns();
  if (__atomic_load_n(&latest_until, __ATOMIC_ACQUIRE) <= now) return 0;
  pthread_once(&once, init);
  pthread_mutex_lock(&lock);
  int i = slot_of(pid, 0, now);
  int yes = i >= 0 && slots[i].opcode == opcode && slots[i].until > now;
  pthread_mutex_unlock(&lock);
  return yes;
}

void gate_open (uint32_t pid) {
  pthread_once(&once, init);
  pthread_mutex_lock(&lock);
  int i = slot_of(pid, 0, 0);
  if (i >= 0) slots[i].pid = 0, pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
}

void gate_wait_for_retries (void) {
  if (__atomic_load_n(&latest_until, __ATOMIC_ACQUIRE) <= now_ns()) return;
  pthread_once(&once, init);
  pthread_mutex_lock(&lock);
  for (;;) {
    uint64_t now = now_ns(), until = 0;
    for (int i = 0; i < SLOTS; i++)
      if (slots[i].pid != 0 && slots[i].until > now && slots[i].until > until) until = slots[i].until;
    if (until == 0) break;
    struct timespec t = { .tv_sec = (time_t) (until / 1000000000ull), .tv_nsec = (long) (until % 1000000000ull) };
    pthread_cond_timedwait(&changed, &lock, &t);
  }
  pthread_mutex_unlock(&lock);
}
