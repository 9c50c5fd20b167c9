// Child steps: resource limits. Async-signal-safe only (see child.cc).
#include <errno.h>

#include "child_steps.h"

namespace nsjail {

int StepSetrlimit(const Step&) noexcept { return ENOSYS; }

}  // namespace nsjail
