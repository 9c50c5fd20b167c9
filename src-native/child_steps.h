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
int StepStageRoot(const Step& s) noexcept;
int StepBindMount(const Step& s) noexcept;
int StepMountFs(const Step& s) noexcept;
int StepMountSetattr(const Step& s) noexcept;
int StepCreateDir(const Step& s) noexcept;
int StepCreateFile(const Step& s) noexcept;
int StepCreateSymlink(const Step& s) noexcept;
int StepChmod(const Step& s) noexcept;
int StepMountOverlay(const Step& s, int32_t* part) noexcept;  // *part: which layer (2 * index + phase) failed

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
int StepLockMounts(const Step& s) noexcept;
constexpr unsigned long kSetIdsGroups = 1, kSetIdsGid = 2, kSetIdsUid = 4, kSetIdsKeepCaps = 8;  // setIds flags
constexpr unsigned long kCapsBoundingBestEffort = 1;  // capabilities flags
constexpr unsigned kUnshareMustFail = 1;  // unshare mode: a check that the namespace cannot be made
int WaitForParent(const ChildPlan* plan) noexcept;   // before the steps, when sync_fd[0] >= 0
int ExecInit(const ChildPlan* plan) noexcept;        // instead of the program's execve, when init_fd >= 0

}  // namespace nsjail
