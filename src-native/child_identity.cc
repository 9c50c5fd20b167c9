// Child steps: ids, capabilities, no_new_privs, seccomp. Async-signal-safe only (see child.cc).
#include <errno.h>

#include "child_steps.h"

namespace nsjail {

int StepSetIds(const Step&) noexcept { return ENOSYS; }
int StepCapabilities(const Step&) noexcept { return ENOSYS; }
int StepNoNewPrivs(const Step&) noexcept { return ENOSYS; }
int StepSeccomp(const Step&) noexcept { return ENOSYS; }
int StepUnshare(const Step&) noexcept { return ENOSYS; }

}  // namespace nsjail
