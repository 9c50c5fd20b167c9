// Starting the child: clone3 on a dedicated stack, with a fallback to clone(2).
#pragma once
#include <sys/types.h>

namespace nsjail {

enum class CloneEngine { kAuto, kClone3, kLegacyClone };

struct CloneRequest {
  unsigned long long flags;   // CLONE_NEW* and CLONE_VM|CLONE_VFORK; CLONE_PIDFD is added here
  int (*fn)(void*) noexcept;  // runs in the child on the dedicated stack
  void* arg;
  CloneEngine engine;
  long host_id = -1;          // >= 0: clone as this host id (hostids.h: CloneAsHostId)
};

struct CloneResult {
  pid_t pid;   // > 0 on success
  int pidfd;   // owned by the caller
  int err;     // errno when pid <= 0
  const char* syscall;
};

// Clones with all signals blocked on the calling thread (restored before returning).
CloneResult CloneChild(const CloneRequest& request);

}  // namespace nsjail
