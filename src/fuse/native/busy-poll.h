/*
 * Busy polling: while a mount serves requests, its idle CPUs poll instead of halting.
 *
 * Why: every FUSE request is a chain of wake-ups (caller -> libfuse worker -> JS thread -> caller),
 * and on this project's machine kind (a KVM guest whose idle vCPUs halt at once: the guest's own
 * halt polling is off, haltpoll.guest_halt_poll_ns=0) waking a thread on a halted vCPU costs
 * ~20-30 us, more than most requests' work. perf (sched_switch) over 2,000 small files from
 * Python: 95% of the requests were answered on the other CPU than the caller's, at 44 us p50
 * against 27 us on the same one; the CPUs were idle 70% of the time. The scheduler places the
 * threads, not we: a caller woken while its CPU is busy moves to the idle one, so pinning the
 * mount's threads where the caller runs did not keep them together (tried: the caller moved
 * away within a few requests, no gain).
 *
 * How: one thread per CPU (at most BUSY_POLL_MAX_CPUS), pinned to it at the lowest priority there
 * is (SCHED_IDLE: any other runnable thread on that CPU takes it at once, and the scheduler
 * counts such a CPU as idle when it places a wake-up), spins while a request came less than the
 * window ago, and sleeps otherwise until the next request pokes it. A wake-up then finds the vCPU
 * running. The cost is CPU time nobody else wanted, during bursts of requests and one window
 * after; when requests stop, the threads sleep. The same trade as io_uring's SQPOLL thread or a
 * socket's SO_BUSY_POLL, made here because the guest does not do it itself.
 * Spinning vCPUs also take host CPU from the VM's device emulation, so polling stops for a while
 * whenever some task stalled on I/O (/proc/pressure/io): see look_at_io in busy-poll.c.
 */
#ifndef GFS_BUSY_POLL_H
#define GFS_BUSY_POLL_H

#include <stdint.h>

#define BUSY_POLL_MAX_CPUS 8

typedef struct busy_poll busy_poll_t;

/* Starts the polling threads (one per CPU of the process's affinity), polling window_ns after each
   poke. NULL when window_ns is 0, there is one CPU only, or threads cannot be made. */
busy_poll_t *busy_poll_start (uint64_t window_ns);
/* A request came: keep polling for the window from now. Cheap; any thread; NULL does nothing. */
void busy_poll_poke (busy_poll_t *bp);
/* Stops and joins the threads, frees. NULL does nothing. */
void busy_poll_stop (busy_poll_t *bp);

#endif
