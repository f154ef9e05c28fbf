/* What /proc tells of a caller of the mount (proc-state.h). */

#include "proc-state.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Reads a small /proc file into buf (NUL-terminated); its length, or -1. */
static int read_proc (uint32_t pid, const char *what, char *buf, size_t size) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%u/%s", pid, what);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = '\0';
  return (int) n;
}

enum proc_state proc_state_of (uint32_t pid) {
  char buf[512];
  if (pid == 0 || read_proc(pid, "stat", buf, sizeof(buf)) < 0) return PROC_GONE;
  const char *end = strrchr(buf, ')'); /* "pid (comm) S ...": comm may hold anything */
  if (end == NULL || end[1] != ' ') return PROC_GONE;
  if (end[2] == 'R') return PROC_RUNNABLE;
  char wchan[128];
  if (read_proc(pid, "wchan", wchan, sizeof(wchan)) > 0 && strcmp(wchan, "0") != 0) {
    /* request_wait_answer on the kernels of these years; fuse_* on older ones. */
    return strstr(wchan, "fuse") != NULL || strstr(wchan, "request_wait_answer") != NULL ? PROC_ON_REQUEST : PROC_ASLEEP;
  }
  return PROC_ASLEEP_UNKNOWN;
}
