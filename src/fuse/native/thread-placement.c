/* Thread placement of a mount's FUSE workers and JS thread (thread-placement.h). */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getcpu, CPU_SET, pthread_setaffinity_np */
#endif

#include "thread-placement.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <uv.h>

static cpu_set_t pin_any;              /* the affinity the process started with */
static int pin_enabled = 0;
static pthread_t js_thread;
static int pin_cpu = -1;               /* where the mount's threads should run; -1: anywhere */
static uint64_t pin_since = 0;         /* when pin_cpu was chosen */
static uint64_t bulk_until = 0;        /* no pinning before this */
static int js_freed = 0;               /* a worker set the JS thread free (see pin_request) */
static __thread int pin_applied = -2;  /* what this thread last applied to itself */

#define PIN_BULK_BYTES 65536
#define PIN_BULK_NS 200000000ull       /* bulk traffic keeps the threads free this long */
#define PIN_MAX_NS 1000000000ull       /* then the scheduler may place the JS thread afresh */

/* On the JS thread, when a mount starts. */
void pin_init (void) {
  if (sched_getaffinity(0, sizeof pin_any, &pin_any) != 0) return;
  js_thread = pthread_self();
  pin_enabled = CPU_COUNT(&pin_any) > 1;
}

/* Move the calling thread to where the threads should be now. */
static void pin_follow (int force) {
  int want = __atomic_load_n(&pin_cpu, __ATOMIC_RELAXED);
  if (want == pin_applied && !force) return;
  cpu_set_t set;
  if (want < 0) set = pin_any;
  else { CPU_ZERO(&set); CPU_SET(want, &set); }
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  pin_applied = want;
}

/* A worker with a request of len bytes (0: no data), before it hands it to the JS thread. */
void pin_request (size_t len) {
  if (!pin_enabled) return;
  uint64_t now = uv_hrtime();
  if (len >= PIN_BULK_BYTES) {
    __atomic_store_n(&bulk_until, now + PIN_BULK_NS, __ATOMIC_RELAXED);
    __atomic_store_n(&pin_cpu, -1, __ATOMIC_RELAXED); /* the JS thread frees itself in pin_js */
  } else if (__atomic_load_n(&pin_cpu, __ATOMIC_RELAXED) >= 0 && now - __atomic_load_n(&pin_since, __ATOMIC_RELAXED) > PIN_MAX_NS) {
    /* Free the JS thread before it wakes for this request: the scheduler then picks its CPU (a
       busy one is left), and pin_js pins everything there. */
    __atomic_store_n(&pin_cpu, -1, __ATOMIC_RELAXED);
    __atomic_store_n(&js_freed, 1, __ATOMIC_RELAXED);
    pthread_setaffinity_np(js_thread, sizeof pin_any, &pin_any);
  }
  pin_follow(0);
}

/* The JS thread, as it takes requests: pins itself (and so the workers, at their next request)
   where it runs now, unless bulk traffic is on. */
void pin_js (void) {
  if (!pin_enabled) return;
  uint64_t now = uv_hrtime();
  if (__atomic_load_n(&pin_cpu, __ATOMIC_RELAXED) < 0 && now > __atomic_load_n(&bulk_until, __ATOMIC_RELAXED)) {
    int cpu = sched_getcpu();
    if (cpu >= 0 && CPU_ISSET(cpu, &pin_any)) {
      __atomic_store_n(&pin_since, now, __ATOMIC_RELAXED);
      __atomic_store_n(&pin_cpu, cpu, __ATOMIC_RELAXED);
    }
  }
  pin_follow(__atomic_exchange_n(&js_freed, 0, __ATOMIC_RELAXED));
}
