// Path resolution inside the mount plan's roots, shared by the child's file and mount steps
// (child_fs.cc, implemented in child_paths.cc): the step flags and staging layout lib/ and the
// child agree on, the roots each child opens once (FsRoots), and lookups that never leave a
// root. Internal to the addon (hidden visibility); async-signal-safe only (see child.cc).
#pragma once
#include <cstdint>

#include "child_steps.h"

namespace nsjail {

// Step::flags of the mount-plan steps; the same numbers are in lib/mount-steps.ts (FS_*).
// The low byte is MOUNT_ATTR_RDONLY | NOSUID | NODEV | NOEXEC as the kernel numbers them.
constexpr unsigned long kAttrMask = 0xff;
constexpr unsigned long kRecursive = 1UL << 8;        // bind / setattr the whole subtree
constexpr unsigned long kTry = 1UL << 9;              // a missing bind source skips the step
constexpr unsigned long kSourceInNewRoot = 1UL << 11; // source is inside the new root (e.g. proc/sys)
constexpr unsigned long kInStaging = 1UL << 12;       // path is in the staging root, not the new root
constexpr unsigned long kPrepared = 1UL << 13;        // values[0]: a detached tree the parent made (idmapped)
constexpr unsigned long kParentMode = 1UL << 14;      // values[1]: mode of missing parents (default 0755)
constexpr unsigned long kSourceInStaging = 1UL << 15; // bind source is in the staging root (a data file)
constexpr unsigned long kSourceFd = 1UL << 16;        // values[0]: an fd of the parent the source must be

// The staging layout after StepStageRoot (lib/mount-steps.ts: NEW_ROOT, OLD_ROOT).
constexpr const char* kNewRoot = "/newroot";
constexpr const char* kOldRoot = "/oldroot";

enum class Create { kNothing, kDir, kFile };

// An fd on `rel` resolved inside the directory `root` as if it were "/", or -1 with errno.
long OpenInRoot(int root, const char* rel, uint64_t flags) noexcept;
// A root of the mount plan, opened once and kept in `*slot` until CloseFsRoots; -1 with errno.
int CachedDir(int* slot, const char* path) noexcept;
// Passes `err` on; after a mount at the target root itself, drops the root's stale fd.
int AfterAttach(int err, const Step& s, FsRoots* roots) noexcept;
// The root a step's path is resolved in: the staging root or the new root; -1 with errno.
int TargetRoot(const Step& s, FsRoots* roots) noexcept;
// The host's root (/oldroot), where host sources are resolved; -1 with errno.
int HostRoot(FsRoots* roots) noexcept;
// An O_PATH fd on `rel` inside `root`, missing components made as `last` says, or -errno.
long ResolveTarget(int root, const char* rel, Create last, unsigned mode, unsigned parent_mode = 0755, bool* created = nullptr) noexcept;
// An fd on the parent of `rel` (made as needed) with its last name in `name`, or -errno.
long ResolveParent(int root, const char* rel, char (&name)[256], unsigned parent_mode) noexcept;
// The mode of the missing parents a step makes.
unsigned ParentMode(const Step& s) noexcept;

}  // namespace nsjail
