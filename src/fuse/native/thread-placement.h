/*
 * Thread placement of a mount's FUSE worker threads and its JS thread.
 *
 * Every request goes worker thread -> JS thread -> worker thread. On this project's machine kind
 * (a 2-vCPU KVM guest that halts idle vCPUs without polling) waking a thread on the other, idle
 * CPU costs far more than the work of a small request: perf showed half the mount's CPU time in
 * finish_task_switch. So while requests are small, the workers and the JS thread are kept on one
 * CPU (where the JS thread ran last): a hand-off is then a switch on one CPU, not a wake-up of
 * another (measured: 5000 `echo >>` 1,356-1,375/s unpinned, 2,047-2,675/s pinned). Bulk reads
 * and writes (whose copies want every CPU) lift the pinning for a while; and once a second the
 * scheduler places the JS thread afresh (away from a CPU that something else keeps busy). Other
 * threads (libuv's pool, V8's helpers) are never pinned. Off without the mount option pinThreads,
 * or with one CPU only.
 */
#ifndef GFS_THREAD_PLACEMENT_H
#define GFS_THREAD_PLACEMENT_H

#include <stddef.h>

/* On the JS thread, when a mount that asked for placement starts. */
void pin_init (void);
/* A worker with a request of len bytes (0: no data), before it hands it to the JS thread. */
void pin_request (size_t len);
/* The JS thread, as it takes requests. */
void pin_js (void);

#endif
