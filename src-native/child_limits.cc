// Child steps: resource limits. Async-signal-safe only (see child.cc).
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

#include "child_steps.h"

namespace nsjail {

// prlimit64 on ourselves: the raw syscall takes 64-bit values on every architecture, so
// RLIM_INFINITY (~0) and limits above 4 GiB mean the same everywhere. flags = RLIMIT_*,
// values = {soft, hard}, computed by lib/limits.ts.
int StepSetrlimit(const Step& s) noexcept {
  struct {
    uint64_t cur;
    uint64_t max;
  } limit = {s.values[0], s.values[1]};
  return ::syscall(SYS_prlimit64, 0, static_cast<int>(s.flags), &limit, nullptr) < 0 ? errno : 0;
}

}  // namespace nsjail
