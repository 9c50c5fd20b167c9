// Child steps: UTS and network namespaces. Async-signal-safe only (see child.cc).
#include <errno.h>
#include <unistd.h>

#include "child_steps.h"

namespace nsjail {

int StepSetHostname(const Step& s) noexcept { return ::sethostname(s.data, s.data_len) < 0 ? errno : 0; }

int StepSetns(const Step&) noexcept { return ENOSYS; }

int StepLoopbackUp(const Step&) noexcept { return ENOSYS; }

}  // namespace nsjail
