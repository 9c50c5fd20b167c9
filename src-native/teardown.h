// What an environment (the main thread's or a worker's) leaves behind when it goes away
// without running its JavaScript clean-up (worker.terminate(), process.exit() in a worker):
// the descriptors the addon handed to JavaScript, the sandboxes' cgroups, and the sandboxes
// that were started with dieWithParent: false and must outlive it.
#pragma once
#include <napi.h>
#include <sys/types.h>

#include "unique_fd.h"

namespace nsjail {

// An fd the addon opened and handed to JavaScript: it is closed by the binding's closeFd (or
// handed over for good by releaseFds), else when the environment goes away. fds the addon
// opens are closed by the addon, never by fs.closeSync: a worker's fs tracks the fds it
// opened and warns about (or later closes) others.
void TrackFd(Napi::Env env, int fd);

// A process-wide sequence for names that must be unique across threads (cgroups, veths).
uint64_t NextSequence();

// A sandbox started with dieWithParent: false whose environment went away: it keeps running,
// and a process-wide reaper thread waits for it (no zombie left) and then tries to remove
// cgroups left behind for such sandboxes.
void AdoptOrphan(pid_t pid, UniqueFd pidfd);

// closeFd, releaseFds, nextSequence, cgroupTrack, cgroupUntrack, cgroupSweepOrphans, and the
// environment's clean-up hook.
void InitTeardown(Napi::Env env, Napi::Object exports);

}  // namespace nsjail
