// Parent side: turning the JavaScript plan object into a ChildPlan before clone.
//
// The plan's shape is the private contract in types/native.d.ts; lib/plan.ts builds it.
#include "plan.h"

#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstring>

namespace nsjail {
namespace {

// A field of a plan object: its own property only. The plan is the library's own object, but
// a property missing from it would otherwise be looked up on Object.prototype, where a
// polluted prototype (or a getter: JavaScript run in the middle of a spawn) could supply it.
Napi::Value Field(const Napi::Object& obj, const char* key) {
  if (!obj.HasOwnProperty(key)) return obj.Env().Undefined();
  return obj.Get(key);
}

bool GetStringList(const Napi::Object& obj, const char* key, std::vector<std::string>* out,
                   std::string* error) {
  Napi::Value v = Field(obj, key);
  if (!v.IsArray()) {
    *error = std::string("plan.") + key + " must be an array";
    return false;
  }
  Napi::Array arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value item = arr.Get(i);
    if (!item.IsString()) {
      *error = std::string("plan.") + key + " must hold strings";
      return false;
    }
    std::string s = item.As<Napi::String>().Utf8Value();
    if (s.find('\0') != std::string::npos) {
      *error = std::string("plan.") + key + " holds a NUL byte";
      return false;
    }
    out->push_back(std::move(s));
  }
  return true;
}

// An optional string (or Buffer, for data) field of a step; absent means null.
bool GetBytes(const Napi::Object& obj, const char* key, std::string* out, bool* present) {
  Napi::Value v = Field(obj, key);
  *present = !v.IsUndefined() && !v.IsNull();
  if (!*present) return true;
  if (v.IsString()) {
    *out = v.As<Napi::String>().Utf8Value();
    return true;
  }
  if (v.IsBuffer()) {
    Napi::Buffer<char> b = v.As<Napi::Buffer<char>>();
    out->assign(b.Data(), b.Length());
    return true;
  }
  return false;
}

// A boolean field. Not ToBoolean(): a Get that failed (the environment going away) yields an
// empty value, on which ToBoolean is a fatal error.
bool GetFlag(const Napi::Object& obj, const char* key) {
  Napi::Value v = Field(obj, key);
  return v.IsBoolean() && v.As<Napi::Boolean>().Value();
}

double GetNumber(const Napi::Object& obj, const char* key, double fallback) {
  Napi::Value v = Field(obj, key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
}

// Up to two 64-bit numbers, as BigInts (rlimits and capability sets need all 64 bits).
bool GetValues(const Napi::Object& obj, uint64_t values[2]) {
  Napi::Value v = Field(obj, "values");
  if (v.IsUndefined()) return true;
  if (!v.IsArray() || v.As<Napi::Array>().Length() > 2) return false;
  Napi::Array arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value item = arr.Get(i);
    if (!item.IsBigInt()) return false;
    bool lossless = false;
    values[i] = item.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) return false;
  }
  return true;
}

// This process's /proc, opened once and kept for its lifetime (CLOEXEC): a child writes its
// own id maps through it where the sandbox has no /proc of its own. -errno if it cannot be opened.
int ProcFd() {
  static const int fd = [] {
    int opened = ::open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    return opened >= 0 ? opened : -errno;
  }();
  return fd;
}

bool ParseStepOp(const std::string& name, StepOp* op) {
  static const struct {
    const char* name;
    StepOp op;
  } kOps[] = {
      {"writeFile", StepOp::kWriteFile},     {"mount", StepOp::kMount},
      {"mkdir", StepOp::kMkdir},             {"pivotRoot", StepOp::kPivotRoot},
      {"chroot", StepOp::kChroot},           {"chdir", StepOp::kChdir},
      {"stageRoot", StepOp::kStageRoot},     {"bindMount", StepOp::kBindMount},
      {"mountFs", StepOp::kMountFs},         {"mountSetattr", StepOp::kMountSetattr},
      {"createDir", StepOp::kCreateDir},     {"createFile", StepOp::kCreateFile},
      {"createSymlink", StepOp::kCreateSymlink}, {"chmod", StepOp::kChmod},
      {"mountOverlay", StepOp::kMountOverlay},
      {"sethostname", StepOp::kSetHostname}, {"setns", StepOp::kSetns},
      {"loopbackUp", StepOp::kLoopbackUp},   {"setrlimit", StepOp::kSetrlimit},
      {"setIds", StepOp::kSetIds},           {"capabilities", StepOp::kCapabilities},
      {"noNewPrivs", StepOp::kNoNewPrivs},   {"seccomp", StepOp::kSeccomp},
      {"unshare", StepOp::kUnshare},         {"lockMounts", StepOp::kLockMounts},
  };
  for (const auto& entry : kOps) {
    if (name == entry.name) {
      *op = entry.op;
      return true;
    }
  }
  return false;
}

}  // namespace

const char* PlanStorage::Keep(std::string s) {
  strings_.push_back(std::move(s));
  return strings_.back().c_str();
}

bool PlanStorage::Parse(const Napi::Object& plan, std::string* error) {
  clone_flags = static_cast<unsigned long long>(GetNumber(plan, "cloneFlags", 0));

  std::string engine_name = Field(plan, "engine").IsString() ? Field(plan, "engine").As<Napi::String>().Utf8Value() : "auto";
  if (engine_name == "clone3") {
    engine = CloneEngine::kClone3;
  } else if (engine_name == "clone") {
    engine = CloneEngine::kLegacyClone;
  } else if (engine_name == "auto") {
    engine = CloneEngine::kAuto;
  } else {
    *error = "plan.engine must be auto, clone3 or clone";
    return false;
  }

  std::vector<std::string> candidates;
  if (!GetStringList(plan, "execCandidates", &candidates, error)) return false;
  if (candidates.empty()) {
    *error = "plan.execCandidates is empty";
    return false;
  }
  auto keep_list = [this](std::vector<std::string>& from, std::vector<char*>* to) {
    for (auto& s : from) to->push_back(const_cast<char*>(Keep(std::move(s))));
    to->push_back(nullptr);
  };
  keep_list(candidates, &candidates_);

  // Identity extras (lib/identity.ts, lib/init.ts): parent-written id maps and init.
  child.init_fd = child.status_fd = -1;
  child.init_argv = nullptr;
  Napi::Value init = Field(plan, "init");
  if (!init.IsUndefined()) {
    std::vector<std::string> init_argv;
    if (!init.IsObject() || !Field(init.As<Napi::Object>(), "fd").IsNumber() ||
        !GetStringList(init.As<Napi::Object>(), "argv", &init_argv, error)) {
      if (error->empty()) *error = "plan.init must be {fd, argv}";
      return false;
    }
    child.init_fd = Field(init.As<Napi::Object>(), "fd").As<Napi::Number>().Int32Value();
    keep_list(init_argv, &init_argv_);
    child.init_argv = init_argv_.data();
  }
  Napi::Value info = Field(plan, "info");
  if (!info.IsUndefined()) {
    if (!info.IsObject() || !Field(info.As<Napi::Object>(), "fd").IsNumber() ||
        !GetStringList(info.As<Napi::Object>(), "namespaces", &info_namespaces, error)) {
      if (error->empty()) *error = "plan.info must be {fd, namespaces}";
      return false;
    }
    for (const std::string& name : info_namespaces) {
      if (name.empty() || name.find('/') != std::string::npos) {
        *error = "plan.info.namespaces must be namespace names";
        return false;
      }
    }
    wants_info = true;
    info_fd = Field(info.As<Napi::Object>(), "fd").As<Napi::Number>().Int32Value();
  }
  userns_block_fd = static_cast<int>(GetNumber(plan, "usernsBlockFd", -1));
  Napi::Value host_id_value = Field(plan, "hostId");
  if (host_id_value.IsNumber()) host_id = host_id_value.As<Napi::Number>().Int64Value();
  Napi::Value setup = Field(plan, "parentSetup");
  if (!setup.IsUndefined()) {
    if (!setup.IsArray()) {
      *error = "plan.parentSetup must be an array";
      return false;
    }
    Napi::Array items = setup.As<Napi::Array>();
    for (uint32_t i = 0; i < items.Length(); i++) {
      ParentStep p;
      Napi::Value item = items.Get(i);
      bool ok = item.IsObject();
      if (ok && item.As<Napi::Object>().Has("argv")) {
        ok = GetStringList(item.As<Napi::Object>(), "argv", &p.argv, error) && !p.argv.empty();
      } else if (ok) {
        Napi::Object o = item.As<Napi::Object>();
        ok = Field(o, "path").IsString() && Field(o, "data").IsString();
        if (ok) {
          p.path = Field(o, "path").As<Napi::String>().Utf8Value();
          p.data = Field(o, "data").As<Napi::String>().Utf8Value();
        }
      }
      if (!ok) {
        *error = "plan.parentSetup[" + std::to_string(i) + "] must be {path, data} or {argv}";
        return false;
      }
      parent_setup.push_back(std::move(p));
    }
  }

  Napi::Value steps_value = Field(plan, "steps");
  if (!steps_value.IsArray()) {
    *error = "plan.steps must be an array";
    return false;
  }
  Napi::Array steps = steps_value.As<Napi::Array>();
  steps_.reserve(steps.Length());
  for (uint32_t i = 0; i < steps.Length(); i++) {
    Napi::Value sv = steps.Get(i);
    if (!sv.IsObject()) {
      *error = "plan.steps entries must be objects";
      return false;
    }
    Napi::Object so = sv.As<Napi::Object>();
    Step step{};
    Napi::Value op_value = Field(so, "op");
    if (!op_value.IsString() || !ParseStepOp(op_value.As<Napi::String>().Utf8Value(), &step.op)) {
      *error = "plan.steps[" + std::to_string(i) + "].op is not a known step";
      return false;
    }
    const char* fields[] = {"path", "source", "fstype", "data"};
    const char** targets[] = {&step.path, &step.source, &step.fstype, &step.data};
    for (size_t f = 0; f < 4; f++) {
      std::string bytes;
      bool present = false;
      if (!GetBytes(so, fields[f], &bytes, &present)) {
        *error = "plan.steps[" + std::to_string(i) + "]." + fields[f] + " must be a string or Buffer";
        return false;
      }
      if (!present) continue;
      if (f == 3) step.data_len = bytes.size();
      *targets[f] = Keep(std::move(bytes));
    }
    step.flags = static_cast<unsigned long>(GetNumber(so, "flags", 0));
    step.mode = static_cast<unsigned>(GetNumber(so, "mode", 0));
    if (!GetValues(so, step.values)) {
      *error = "plan.steps[" + std::to_string(i) + "].values must be an array of up to 2 BigInts";
      return false;
    }
    if (step.op == StepOp::kLockMounts) {
      int proc_fd = ProcFd();
      if (proc_fd < 0) {
        *error = "lockMounts: cannot open /proc: " + std::string(std::strerror(-proc_fd));
        return false;
      }
      step.values[0] = static_cast<uint64_t>(proc_fd);
    }
    steps_.push_back(step);
  }

  child.steps = steps_.data();
  child.step_count = steps_.size();
  child.argv = nullptr;  // RunStorage::Apply
  child.envp = nullptr;
  child.exec_candidates = candidates_.data();
  child.exec_candidate_count = candidates_.size() - 1;
  child.die_with_parent = GetFlag(plan, "dieWithParent");
  child.parent_pidfd = -1;  // spawn.cc: a pidfd of this process, with die_with_parent
  // lib/plan.ts knows whether the child starts in another PID namespace (new or joined).
  child.parent_pid = static_cast<int>(GetNumber(plan, "parentPid", (clone_flags & CLONE_NEWPID) ? 0 : ::getpid()));
  child.new_session = GetFlag(plan, "newSession");
  child.stdio[0] = child.stdio[1] = child.stdio[2] = -1;
  child.error_slot = nullptr;
  child.error_fd = -1;
  child.sync_fd[0] = child.sync_fd[1] = -1;
  child.close_early_fd = wants_info ? info_fd : -1;
  child.block_fd = static_cast<int>(GetNumber(plan, "blockFd", -1));
  return true;
}

namespace {

// A packed list of NUL-terminated strings (lib/plan.ts: packStrings, packEnv) into `out`, a
// null-terminated array of pointers into the bytes. With `borrow` the pointers go into the
// caller's Buffer itself: only for a synchronous spawn, which reads it last and runs no
// JavaScript after it until the child has exec'd (the Buffer is the library's own and
// referenced by the call; plan fields are read as own properties: no getter runs);
// otherwise into a copy in `bytes`, checked after copying (the caller's memory could change
// between a check and the copy). With `entries_need_equals` every string must hold a '='
// (key=value). One pass over the bytes, no per-string call into JavaScript.
bool GetPacked(const Napi::Object& obj, const char* key, bool entries_need_equals, bool borrow, std::string* bytes,
               std::vector<char*>* out, std::string* error) {
  Napi::Value v = Field(obj, key);
  if (!v.IsBuffer()) {
    *error = std::string("plan.") + key + " must be a Buffer";
    return false;
  }
  Napi::Buffer<char> b = v.As<Napi::Buffer<char>>();
  char* p = b.Data();
  size_t size = b.Length();
  if (!borrow) {
    bytes->assign(p, size);
    p = bytes->data();
  }
  if (size > 0 && p[size - 1] != '\0') {
    *error = std::string("plan.") + key + " must end with a NUL";
    return false;
  }
  char* end = p + size;
  // Every string ends with a NUL, the last one at end - 1: memchr always finds one.
  auto next = [end](char* from) { return static_cast<char*>(std::memchr(from, '\0', static_cast<size_t>(end - from))); };
  size_t count = 0;
  for (char* q = p; q < end; q = next(q) + 1) count++;
  out->clear();
  out->reserve(count + 1);
  while (p < end) {
    char* nul = next(p);
    if (entries_need_equals && !std::memchr(p, '=', static_cast<size_t>(nul - p))) {
      *error = std::string("plan.") + key + " entries must be key=value";
      return false;
    }
    out->push_back(p);
    p = nul + 1;
  }
  out->push_back(nullptr);
  return true;
}

bool ParseStdio(const Napi::Object& plan, StdioRequest (&stdio)[3], std::string* error) {
  Napi::Value stdio_value = Field(plan, "stdio");
  if (!stdio_value.IsArray() || stdio_value.As<Napi::Array>().Length() != 3) {
    *error = "plan.stdio must be an array of 3";
    return false;
  }
  Napi::Array stdio_array = stdio_value.As<Napi::Array>();
  for (uint32_t i = 0; i < 3; i++) {
    Napi::Value s = stdio_array.Get(i);
    if (s.IsNumber()) {
      stdio[i] = {StdioRequest::kFd, s.As<Napi::Number>().Int32Value()};
    } else if (s.IsString() && s.As<Napi::String>().Utf8Value() == "pipe") {
      stdio[i] = {StdioRequest::kPipe, -1};
    } else if (s.IsString() && s.As<Napi::String>().Utf8Value() == "null") {
      stdio[i] = {StdioRequest::kNull, -1};
    } else if (s.IsString() && s.As<Napi::String>().Utf8Value() == "close") {
      stdio[i] = {StdioRequest::kClose, -1};
    } else {
      *error = "plan.stdio entries must be 'pipe', 'null', 'close' or an fd";
      return false;
    }
  }

  return true;
}

// An optional uint32 index field below `limit` (inclusive when `inclusive`).
bool GetIndex(const Napi::Object& obj, const char* key, size_t limit, bool inclusive, size_t* out) {
  Napi::Value v = Field(obj, key);
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != static_cast<double>(static_cast<size_t>(d))) return false;
  *out = static_cast<size_t>(d);
  return inclusive ? *out <= limit : *out < limit;
}

}  // namespace

const char* RunStorage::Keep(std::string s) {
  strings_.push_back(std::move(s));
  return strings_.back().c_str();
}

bool RunStorage::Parse(const Napi::Object& run, const PlanStorage& base, bool borrow, std::string* error) {
  // argv and envp last: once they are borrowed nothing may run that could change them (the
  // fields are own data properties, Field: reading them runs no JavaScript either).
  if (!ParseStdio(run, stdio, error) || !ParseChanges(run, base, error)) return false;
  if (!GetPacked(run, "argv", false, borrow, &argv_bytes_, &argv_, error) ||
      !GetPacked(run, "envp", true, borrow, &envp_bytes_, &envp_, error)) {
    return false;
  }
  if (argv_.size() < 2) {
    *error = "plan.argv is empty";
    return false;
  }
  return true;
}

// A prepared sandbox's run: what differs from the prepared plan.
bool RunStorage::ParseChanges(const Napi::Object& run, const PlanStorage& base, std::string* error) {
  Napi::Value candidates = Field(run, "runCandidates");
  if (!candidates.IsUndefined()) {
    std::vector<std::string> list;
    if (!GetStringList(run, "runCandidates", &list, error)) return false;
    if (list.empty()) {
      *error = "plan.runCandidates is empty";
      return false;
    }
    for (auto& c : list) candidates_.push_back(const_cast<char*>(Keep(std::move(c))));
    candidates_.push_back(nullptr);
  }
  Napi::Value paths = Field(run, "stepPaths");
  Napi::Value chdir = Field(run, "chdirAt");
  if (paths.IsUndefined() && chdir.IsUndefined()) return true;
  steps_ = base.steps();
  if (!paths.IsUndefined()) {
    if (!paths.IsArray()) {
      *error = "plan.stepPaths must be an array";
      return false;
    }
    Napi::Array items = paths.As<Napi::Array>();
    for (uint32_t i = 0; i < items.Length(); i++) {
      Napi::Value item = items.Get(i);
      size_t index = 0;
      if (!item.IsObject() || !GetIndex(item.As<Napi::Object>(), "index", steps_.size(), false, &index) ||
          !Field(item.As<Napi::Object>(), "path").IsString()) {
        *error = "plan.stepPaths[" + std::to_string(i) + "] must be {index, path}";
        return false;
      }
      steps_[index].path = Keep(Field(item.As<Napi::Object>(), "path").As<Napi::String>().Utf8Value());
    }
  }
  if (!chdir.IsUndefined()) {
    size_t index = 0;
    if (!chdir.IsObject() || !GetIndex(chdir.As<Napi::Object>(), "index", steps_.size(), true, &index) ||
        !Field(chdir.As<Napi::Object>(), "path").IsString()) {
      *error = "plan.chdirAt must be {index, path}";
      return false;
    }
    Step step{};
    step.op = StepOp::kChdir;
    step.path = Keep(Field(chdir.As<Napi::Object>(), "path").As<Napi::String>().Utf8Value());
    steps_.insert(steps_.begin() + static_cast<std::ptrdiff_t>(index), step);
  }
  return true;
}

void RunStorage::Apply(const PlanStorage& base, ChildPlan* child) const {
  *child = base.child;
  child->argv = argv_.data();
  child->envp = envp_.data();
  if (!candidates_.empty()) {
    child->exec_candidates = candidates_.data();
    child->exec_candidate_count = candidates_.size() - 1;
  }
  if (!steps_.empty()) {
    child->steps = steps_.data();
    child->step_count = steps_.size();
  }
}

Napi::Function PreparedPlan::DefineClass(Napi::Env env) {
  return ObjectWrap<PreparedPlan>::DefineClass(env, "PreparedPlan", {});
}

PreparedPlan::PreparedPlan(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PreparedPlan>(info) {
  if (!info[0].IsObject()) {
    Napi::TypeError::New(info.Env(), "preparePlan(plan): bad arguments").ThrowAsJavaScriptException();
    return;
  }
  auto storage = std::make_shared<PlanStorage>();
  std::string reason;
  if (!storage->Parse(info[0].As<Napi::Object>(), &reason)) {
    Napi::TypeError::New(info.Env(), "prepareSandbox: malformed native plan: " + reason).ThrowAsJavaScriptException();
    return;
  }
  // Parsed while the environment was going away (a worker terminated): reads may have failed
  // unseen; such a plan is never used (From refuses a PreparedPlan without storage).
  if (!CanCallIntoJs(info.Env())) return;
  storage_ = std::move(storage);
}

PreparedPlan* PreparedPlan::From(Napi::Env env, const Napi::Value& value) {
  AddonData* data = GetAddonData(env);
  if (value.IsObject() && value.As<Napi::Object>().InstanceOf(data->prepared_constructor.Value())) {
    PreparedPlan* prepared = Unwrap(value.As<Napi::Object>());
    if (prepared && prepared->storage_) return prepared;
  }
  Napi::TypeError::New(env, "spawnPrepared: not a prepared plan").ThrowAsJavaScriptException();
  return nullptr;
}

}  // namespace nsjail
