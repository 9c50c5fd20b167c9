// The child's step implementations, one file per concern. Each returns 0 or an errno and
// obeys child.cc's rules: system calls only, no allocation, no exceptions, no locks.
#pragma once
#include "child_plan.h"

namespace nsjail {

// child_fs.cc: files, mounts, the root switch.
int StepWriteFile(const Step& s) noexcept;
int StepMount(const Step& s) noexcept;
int StepMkdir(const Step& s) noexcept;
int StepPivotRoot(const Step& s) noexcept;
int StepChroot(const Step& s) noexcept;
int StepChdir(const Step& s) noexcept;

// child_net.cc: UTS and network.
int StepSetHostname(const Step& s) noexcept;
int StepSetns(const Step& s) noexcept;
int StepLoopbackUp(const Step& s) noexcept;

// child_limits.cc: resource limits.
int StepSetrlimit(const Step& s) noexcept;

// child_identity.cc: ids, capabilities, no_new_privs, seccomp, late unshare.
int StepSetIds(const Step& s) noexcept;
int StepCapabilities(const Step& s) noexcept;
int StepNoNewPrivs(const Step& s) noexcept;
int StepSeccomp(const Step& s) noexcept;
int StepUnshare(const Step& s) noexcept;

}  // namespace nsjail
