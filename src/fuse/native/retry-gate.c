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
   (every stat asks gate_retrying). */
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

/* Opens under way, by sequence number (0: a free slot). */
#define OPENS 64
static uint64_t opens[OPENS];
static uint64_t open_seq;

int gate_open_begins (void) {
  pthread_once(&once, init);
  pthread_mutex_lock(&lock);
  int i = 0;
  while (i < OPENS && opens[i] != 0) i++;
  if (i < OPENS) opens[i] = ++open_seq; /* (more at once than slots: that open goes unwaited for) */
  pthread_mutex_unlock(&lock);
  return i < OPENS ? i : -1;
}

void gate_open_answered (int slot) {
  if (slot < 0 || slot >= OPENS) return;
  pthread_mutex_lock(&lock);
  opens[slot] = 0;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
}

void gate_wait_before_rename (void) {
  pthread_once(&once, init);
  uint64_t deadline = now_ns() + GATE_HOLD_MS * 1000000ull;
  pthread_mutex_lock(&lock);
  uint64_t before = open_seq; /* only the opens under way now: later ones must not starve us */
  for (;;) {
    uint64_t now = now_ns();
    if (now >= deadline) break;
    int wait = 0;
    for (int i = 0; i < OPENS && !wait; i++) wait = opens[i] != 0 && opens[i] <= before;
    for (int i = 0; i < SLOTS && !wait; i++) wait = slots[i].pid != 0 && slots[i].until > now;
    if (!wait) break;
    struct timespec t = { .tv_sec = (time_t) (deadline / 1000000000ull), .tv_nsec = (long) (deadline % 1000000000ull) };
    pthread_cond_timedwait(&changed, &lock, &t);
  }
  pthread_mutex_unlock(&lock);
}
