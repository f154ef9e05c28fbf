/* Renames held back while a process retries a look-up that a rename made fail (retry-gate.h). */

#include "retry-gate.h"
#include "proc-state.h"

#include <pthread.h>
#include <time.h>

#define MS 1000000ull

/* Processes retrying at once: more than this is unheard of; beyond it a retry goes unprotected. */
#define SLOTS 16

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed;
static pthread_once_t once = PTHREAD_ONCE_INIT;
/* pid 0: a free slot. until: when it lapses (CLOCK_MONOTONIC, ns). under_way: requests of pid
   being served; looked_up: its walk has begun (a LOOKUP answered since the ESTALE); asleep_since:
   when it was first seen asleep with an unreadable wait channel (0: not). */
static struct {
  uint32_t pid, opcode, under_way, looked_up;
  uint64_t until, asleep_since;
} slots[SLOTS];
/* The latest `until` ever set: past it no slot is taken, and requests need not take the lock. */
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

/* The slot of pid (or, with take, a free or lapsed one); -1 if none. Under lock. */
static int slot_of (uint32_t pid, int take, uint64_t now) {
  int spare = -1;
  for (int i = 0; i < SLOTS; i++) {
    if (slots[i].pid == pid && slots[i].until > now) return i;
    if (spare < 0 && (slots[i].pid == 0 || slots[i].until <= now)) spare = i;
  }
  return take ? spare : -1;
}

static int any_slot (uint64_t now) {
  return __atomic_load_n(&latest_until, __ATOMIC_ACQUIRE) > now;
}

void gate_close (uint32_t pid, uint32_t opcode) {
  if (pid == 0) return;
  pthread_once(&once, init);
  uint64_t now = now_ns();
  pthread_mutex_lock(&lock);
  int i = slot_of(pid, 1, now);
  if (i >= 0) {
    slots[i].pid = pid, slots[i].opcode = opcode, slots[i].under_way = 0, slots[i].looked_up = 0;
    slots[i].until = now + GATE_HOLD_MS * MS, slots[i].asleep_since = 0;
    if (slots[i].until > latest_until) __atomic_store_n(&latest_until, slots[i].until, __ATOMIC_RELEASE); /* (writers hold the lock) */
  }
  pthread_mutex_unlock(&lock);
}

/* Renames past their wait and not yet answered (gate_rename_begins). */
static int renaming;

/* Opens under way (past gate_request_begins, not yet answered). */
static int opening;

/* Waits for a change, until the time given (ns) at the latest. Under lock. */
static void wait_until (uint64_t ns) {
  struct timespec t = { .tv_sec = (time_t) (ns / 1000000000ull), .tv_nsec = (long) (ns % 1000000000ull) };
  pthread_cond_timedwait(&changed, &lock, &t);
}

int gate_request_begins (uint32_t pid, uint32_t opcode, int open) {
  uint64_t now = now_ns();
  if (!open && (pid == 0 || !any_slot(now))) return 0; /* (every request asks) */
  pthread_once(&once, init);
  pthread_mutex_lock(&lock);
  int i = pid == 0 ? -1 : slot_of(pid, 0, now), res = 0;
  uint64_t deadline = now + GATE_HOLD_MS * MS;
  while ((open || i >= 0) && renaming > 0 && now_ns() < deadline) wait_until(deadline);
  if (i >= 0 && slots[i].pid == pid) slots[i].under_way++, res = slots[i].opcode == opcode ? 2 : 1;
  if (open) opening++;
  pthread_mutex_unlock(&lock);
  return res;
}

void gate_request_answered (uint32_t pid, enum gate_answer what) {
  pthread_once(&once, init);
  pthread_mutex_lock(&lock);
  int i = slot_of(pid, 0, 0);
  if (i >= 0) {
    if (slots[i].under_way > 0) slots[i].under_way--;
    if (what == GATE_LOOKUP) slots[i].looked_up = 1;
    if (what == GATE_RETRY) slots[i].pid = 0; /* the kernel retries once */
    pthread_cond_broadcast(&changed);
  }
  pthread_mutex_unlock(&lock);
}

/* 1 if the process of slot i is on its way to its retry (retry-gate.h). Under lock. */
static int on_its_way (int i, uint64_t now) {
  if (slots[i].under_way > 0) return 1;
  if (!slots[i].looked_up) return 0;
  switch (proc_state_of(slots[i].pid)) {
    case PROC_GONE: return 0;
    case PROC_RUNNABLE: return slots[i].asleep_since = 0, 1;
    case PROC_ON_REQUEST: return 1;
    case PROC_ASLEEP: return 0;
    case PROC_ASLEEP_UNKNOWN: break;
  }
  if (slots[i].asleep_since == 0) slots[i].asleep_since = now;
  return now - slots[i].asleep_since < GATE_ASLEEP_MS * MS;
}

void gate_open_answered (void) {
  pthread_mutex_lock(&lock);
  if (opening > 0) opening--;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
}

void gate_rename_begins (uint32_t pid) {
  pthread_once(&once, init);
  uint64_t deadline = now_ns() + GATE_HOLD_MS * MS;
  pthread_mutex_lock(&lock);
  int own = pid == 0 ? -1 : slot_of(pid, 0, 0);
  if (own >= 0) slots[own].pid = 0; /* a process that renames is past its retry (not waiting for itself) */
  for (;;) {
    uint64_t now = now_ns();
    int retrying = 0;
    for (int i = 0; i < SLOTS && !retrying; i++) retrying = slots[i].pid != 0 && slots[i].until > now && on_its_way(i, now);
    if (!retrying || now >= deadline) break;
    /* An answer wakes us; whether a process still runs is looked at again each millisecond. */
    wait_until(now + MS < deadline ? now + MS : deadline);
  }
  renaming++; /* from now on opens, and requests of processes retrying, wait for us */
  while (opening > 0 && now_ns() < deadline) wait_until(deadline);
  pthread_mutex_unlock(&lock);
}

void gate_rename_answered (void) {
  pthread_mutex_lock(&lock);
  if (renaming > 0) renaming--;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
}
