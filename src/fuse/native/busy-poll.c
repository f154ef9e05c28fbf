/* Busy polling of idle CPUs while a mount is busy (busy-poll.h). */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CPU_SET, pthread_setaffinity_np, SCHED_IDLE */
#endif

#include "busy-poll.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IO_LOOK_NS 1000000ull      /* how often a polling thread looks at the I/O stalls */
#define IO_BACKOFF_NS 10000000ull  /* no polling for this long after some were seen */

struct busy_poll {
  uint64_t window_ns;
  uint64_t last_poke;     /* atomic: when the last request came (monotonic ns) */
  int sleepers;           /* atomic: threads asleep (or about to be), to be woken by a poke */
  int stop;               /* atomic */
  int io_fd;              /* /proc/pressure/io (-1: not there) */
  uint64_t io_looked;     /* atomic: when it was last looked at */
  uint64_t io_stalled;    /* its "some ... total=" then (us), under io_lock */
  uint64_t backoff_until; /* atomic: no polling before this */
  pthread_mutex_t io_lock;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  int nthreads;
  pthread_t threads[BUSY_POLL_MAX_CPUS];
};

typedef struct { busy_poll_t *bp; int cpu; } poller_arg_t;

static uint64_t now_ns (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

/* Microseconds some task stalled on I/O so far (PSI), or 0. */
static uint64_t io_stall_us (int fd) {
  char buf[256];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char *total = strstr(buf, "total="); /* the first line: "some avg10=... total=N" */
  return total ? strtoull(total + 6, NULL, 10) : 0;
}

/* Now and then, while polling: did some task wait for I/O meanwhile? Then polling stops for a
   while. Spinning vCPUs take the host CPU that the VM's device emulation needs: `cp -r` of the
   bench tree from a cold cache (it stalled on reads in every 20 ms of its run) went 21-23 ->
   10-16 MB/s with polling, while the small-file loop that gains from it stalled 3 ms in 0.8 s. */
static void look_at_io (busy_poll_t *bp, uint64_t now) {
  if (bp->io_fd < 0 || now - __atomic_load_n(&bp->io_looked, __ATOMIC_RELAXED) < IO_LOOK_NS) return;
  if (pthread_mutex_trylock(&bp->io_lock) != 0) return; /* another poller looks */
  __atomic_store_n(&bp->io_looked, now, __ATOMIC_RELAXED);
  uint64_t stalled = io_stall_us(bp->io_fd);
  if (stalled > bp->io_stalled && bp->io_stalled != 0) __atomic_store_n(&bp->backoff_until, now + IO_BACKOFF_NS, __ATOMIC_SEQ_CST);
  bp->io_stalled = stalled;
  pthread_mutex_unlock(&bp->io_lock);
}

static int polling (busy_poll_t *bp) {
  uint64_t now = now_ns();
  return now - __atomic_load_n(&bp->last_poke, __ATOMIC_SEQ_CST) < bp->window_ns &&
         now >= __atomic_load_n(&bp->backoff_until, __ATOMIC_SEQ_CST);
}

static void *poller (void *arg) {
  busy_poll_t *bp = ((poller_arg_t *) arg)->bp;
  int cpu = ((poller_arg_t *) arg)->cpu;
  free(arg);
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  struct sched_param param = { 0 };
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
  pthread_setname_np(pthread_self(), "gfs-busy-poll"); /* what top -H and ps -L show */
  while (!__atomic_load_n(&bp->stop, __ATOMIC_ACQUIRE)) {
    if (polling(bp)) {
      for (int i = 0; i < 64; i++) __builtin_ia32_pause();
      look_at_io(bp, now_ns());
      continue;
    }
    pthread_mutex_lock(&bp->lock);
    /* Counted before the last look at last_poke: a poke either sees the sleeper or is seen. */
    __atomic_add_fetch(&bp->sleepers, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&bp->stop, __ATOMIC_ACQUIRE) && !polling(bp)) pthread_cond_wait(&bp->wake, &bp->lock);
    __atomic_sub_fetch(&bp->sleepers, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&bp->lock);
  }
  return NULL;
}

busy_poll_t *busy_poll_start (uint64_t window_ns) {
  cpu_set_t any;
  if (window_ns == 0 || sched_getaffinity(0, sizeof any, &any) != 0 || CPU_COUNT(&any) < 2) return NULL;
  busy_poll_t *bp = calloc(1, sizeof(*bp));
  if (bp == NULL) return NULL;
  bp->window_ns = window_ns;
  bp->io_fd = open("/proc/pressure/io", O_RDONLY | O_CLOEXEC);
  pthread_mutex_init(&bp->io_lock, NULL);
  pthread_mutex_init(&bp->lock, NULL);
  pthread_cond_init(&bp->wake, NULL);
  for (int cpu = 0; cpu < CPU_SETSIZE && bp->nthreads < BUSY_POLL_MAX_CPUS; cpu++) {
    if (!CPU_ISSET(cpu, &any)) continue;
    poller_arg_t *arg = malloc(sizeof(*arg));
    if (arg == NULL) break;
    arg->bp = bp, arg->cpu = cpu;
    if (pthread_create(&bp->threads[bp->nthreads], NULL, poller, arg) != 0) { free(arg); break; }
    bp->nthreads++;
  }
  if (bp->nthreads == 0) { busy_poll_stop(bp); return NULL; }
  return bp;
}

void busy_poll_poke (busy_poll_t *bp) {
  if (bp == NULL) return;
  uint64_t now = now_ns();
  __atomic_store_n(&bp->last_poke, now, __ATOMIC_SEQ_CST);
  /* (While backing off, a wake-up would only put them to sleep again: the next poke after it.) */
  if (__atomic_load_n(&bp->sleepers, __ATOMIC_SEQ_CST) > 0 && now >= __atomic_load_n(&bp->backoff_until, __ATOMIC_SEQ_CST)) {
    pthread_mutex_lock(&bp->lock);
    pthread_cond_broadcast(&bp->wake);
    pthread_mutex_unlock(&bp->lock);
  }
}

void busy_poll_stop (busy_poll_t *bp) {
  if (bp == NULL) return;
  pthread_mutex_lock(&bp->lock);
  __atomic_store_n(&bp->stop, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&bp->wake);
  pthread_mutex_unlock(&bp->lock);
  for (int i = 0; i < bp->nthreads; i++) pthread_join(bp->threads[i], NULL);
  pthread_cond_destroy(&bp->wake);
  pthread_mutex_destroy(&bp->lock);
  pthread_mutex_destroy(&bp->io_lock);
  if (bp->io_fd >= 0) close(bp->io_fd);
  free(bp);
}
