// Parent side: what the parent does for a waiting child between clone and its first step.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "plan.h"

namespace nsjail {

struct ParentSetupResult {
  int err;              // 0, or the errno of the failed operation
  std::string syscall;  // what failed: "open", "write", "posix_spawn", "waitpid", or the helper's name
  int index;            // which ParentStep failed
  int status;           // for a helper: its exit status (-1: killed by a signal), else -1
};

// Writes the files and runs the helpers (newuidmap/newgidmap) of `steps` for child `pid`, in
// order, stopping at the first failure. Blocks the calling thread while a helper runs.
ParentSetupResult RunParentSetup(const std::vector<ParentStep>& steps, pid_t pid);

}  // namespace nsjail
