{
  # gfs fork of fuse-native: built against Debian's system libfuse2 (packages libfuse2 + libfuse-dev).
  # Build with scripts/build-native; output: build/Release/fuse.node
  "targets": [
    {
      "target_name": "fuse",
      "sources": ["fuse-native.c", "names-cache.c", "page-store.c", "readdir-plus.c", "busy-poll.c", "retry-gate.c", "proc-state.c", "thread-placement.c", "aligned-pool.c"],
      "include_dirs": ["/usr/include/fuse"],
      "defines": ["FUSE_USE_VERSION=29", "_FILE_OFFSET_BITS=64", "NAPI_VERSION=8"],
      "libraries": ["-lfuse", "-pthread"],
      "cflags": ["-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"],
      "cflags!": ["-fno-exceptions"]
    }
  ]
}
