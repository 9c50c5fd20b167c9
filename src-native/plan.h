// Parent side: turning the JavaScript plan object into a ChildPlan before clone.
#pragma once
#include <napi.h>

#include <deque>
#include <memory>
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

// The part of a spawn that the options fix: steps, exec candidates, clone flags, identity.
// Owns every byte of it the child will read (strings live in a deque so their addresses stay
// put while more are added; `child` points into it). Parsed for every spawnIsolated, or once
// for many spawns of a prepared sandbox (lib/prepared.ts, PreparedPlan below): read-only
// after Parse, so spawns running on several spawner threads may share it.
class PlanStorage {
 public:
  PlanStorage() = default;
  PlanStorage(const PlanStorage&) = delete;
  PlanStorage& operator=(const PlanStorage&) = delete;

  // Reads and checks the plan; on a malformed plan returns false with a reason. TypeScript
  // validates user options, so a failure here is a bug in the library, not user error.
  // argv, envp and stdio are a run's (RunStorage), not read here.
  bool Parse(const Napi::Object& plan, std::string* error);

  ChildPlan child{};  // a template: each spawn copies it and fills in its run's part
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
  const std::vector<Step>& steps() const { return steps_; }

 private:
  const char* Keep(std::string s);
  std::deque<std::string> strings_;
  std::vector<Step> steps_;
  std::vector<char*> candidates_, init_argv_;
};

// What one run adds to a PlanStorage: argv and envp (each one packed Buffer of NUL-terminated
// strings, pointed into: the caller's own for a synchronous spawn, `borrow`, read last with no
// JavaScript run after it until exec, else a copy; so their cost grows with their bytes as the
// kernel's own copy at execve does), stdio and, for a prepared sandbox, the exec candidates of
// a PATH given for this run, replaced step paths (the cgroup.procs files of this run's
// cgroup, its cwd) and an inserted chdir step.
class RunStorage {
 public:
  bool Parse(const Napi::Object& run, const PlanStorage& base, bool borrow, std::string* error);
  // Points `child` (a copy of base.child) at this run's strings and steps.
  void Apply(const PlanStorage& base, ChildPlan* child) const;

  StdioRequest stdio[3];

 private:
  bool ParseChanges(const Napi::Object& run, const PlanStorage& base, std::string* error);
  const char* Keep(std::string s);
  std::string argv_bytes_, envp_bytes_;
  std::vector<char*> argv_, envp_, candidates_;
  std::vector<Step> steps_;  // empty: the base's steps as they are
  std::deque<std::string> strings_;
};

// A prepared sandbox's parsed plan, held by a JavaScript object (binding.preparePlan); each
// spawn from it holds a reference too, so it outlives the object while a spawn is under way.
class PreparedPlan : public Napi::ObjectWrap<PreparedPlan> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  explicit PreparedPlan(const Napi::CallbackInfo& info);
  std::shared_ptr<const PlanStorage> storage() const { return storage_; }
  // The PreparedPlan wrapped by `value`, or null (with a TypeError pending) if it is none.
  static PreparedPlan* From(Napi::Env env, const Napi::Value& value);

 private:
  std::shared_ptr<const PlanStorage> storage_;
};

}  // namespace nsjail
