// The child's step implementations, one file per concern. Each returns 0 or an errno and
// obeys child.cc's rules: system calls only, no allocation, no exceptions, no locks.
#pragma once
#include "child_plan.h"

namespace nsjail {

// child_fs.cc: files, mounts, the root switch. The mount-plan steps resolve their paths in
// three directories, each opened once per child (every open is a system call), on the
// child's own stack, and closed when a root switch makes them stale (CloseFsRoots). The
// resolution inside them is child_paths.cc's (child_paths.h).
struct FsRoots {
  int old_root = -1;  // /oldroot: the host's root, where host sources are resolved
  int new_root = -1;  // /newroot: the sandbox's root being built
  int staging = -1;   // "/" while staging: the staging tmpfs
};
void CloseFsRoots(FsRoots* roots) noexcept;
int StepWriteFile(const Step& s) noexcept;
int StepMount(const Step& s) noexcept;
int StepMkdir(const Step& s) noexcept;
int StepPivotRoot(const Step& s, FsRoots* roots) noexcept;
int StepChroot(const Step& s, FsRoots* roots) noexcept;
int StepChdir(const Step& s) noexcept;
int StepStageRoot(const Step& s, FsRoots* roots) noexcept;
int StepBindMount(const Step& s, FsRoots* roots, int32_t* part) noexcept;  // *part 0: opening the source failed
int StepMountFs(const Step& s, FsRoots* roots) noexcept;
int StepMountSetattr(const Step& s, FsRoots* roots) noexcept;
int StepCreateDir(const Step& s, FsRoots* roots) noexcept;
int StepCreateFile(const Step& s, FsRoots* roots) noexcept;
int StepCreateSymlink(const Step& s, FsRoots* roots) noexcept;
int StepChmod(const Step& s, FsRoots* roots) noexcept;
int StepMountOverlay(const Step& s, FsRoots* roots, int32_t* part) noexcept;  // *part: which layer (2 * index + phase) failed

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
constexpr unsigned long kCapsNotInherited = 2;       // none inheritable or ambient (capabilities: 'unchanged')
int WaitForParent(const ChildPlan* plan) noexcept;   // before the steps, when sync_fd[0] >= 0
int ExecInit(const ChildPlan* plan) noexcept;        // instead of the program's execve, when init_fd >= 0

}  // namespace nsjail
