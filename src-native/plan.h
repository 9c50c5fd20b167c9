// Parent side: turning the JavaScript plan object into a ChildPlan before clone.
#pragma once
#include <napi.h>

#include <deque>
#include <string>
#include <vector>

#include "child_plan.h"
#include "clone.h"

namespace nsjail {

// How the parent provides one of the child's fd 0..2.
struct StdioRequest {
  enum Kind { kPipe, kNull, kFd, kClose } kind = kNull;
  int fd = -1;  // for kFd
};

// Done by the parent between clone and the child's first step, for parent-written id maps
// (lib/identity.ts) and cgroup joins (lib/plan.ts): write `data` to /proc/PID/`path` (or to
// `path` itself when it is absolute; data "{pid}" becomes the child's pid), or run `argv` (an
// absolute path first, "{pid}" replaced by the child's pid) and require exit status 0. See
// parent_setup.cc.
struct ParentStep {
  std::string path, data;
  std::vector<std::string> argv;
};

// Owns every byte the child will read. Strings live in a deque so their addresses stay put
// while more are added; the ChildPlan points into it.
class PlanStorage {
 public:
  // Reads and checks the plan; on a malformed plan returns false with a reason. TypeScript
  // validates user options, so a failure here is a bug in the library, not user error.
  bool Parse(const Napi::Object& plan, std::string* error);

  ChildPlan child{};
  StdioRequest stdio[3];
  unsigned long long clone_flags = 0;
  CloneEngine engine = CloneEngine::kAuto;
  std::vector<ParentStep> parent_setup;  // non-empty: the child waits for it (ChildPlan::sync_fd)
  long host_id = -1;                     // >= 0: clone as this host id (lib/hostids.ts)
  // plan.info (lib/options.ts `info`): right after clone the parent reads the ids of these
  // namespaces from /proc/PID/ns and, with info_fd >= 0, writes them there as bubblewrap's
  // --info-fd JSON and closes it. The child waits (sync_fd) until then.
  bool wants_info = false;
  int info_fd = -1;
  std::vector<std::string> info_namespaces;
  // plan.usernsBlockFd: after the info, the parent reads one byte (or end of file) from it
  // before letting the child go on, so that the caller can write the id maps. -1: none.
  int userns_block_fd = -1;
  // The child waits for the parent after clone (ChildPlan::sync_fd).
  bool NeedsSync() const { return !parent_setup.empty() || wants_info || userns_block_fd >= 0; }

 private:
  const char* Keep(std::string s);
  std::deque<std::string> strings_;
  std::vector<Step> steps_;
  std::vector<char*> argv_, envp_, candidates_, init_argv_;
};

}  // namespace nsjail
