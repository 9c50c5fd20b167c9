// Parent side of a spawn: stdio and the error pipe, clone, and what the child reported.
//
// With CLONE_VM|CLONE_VFORK the calling thread is suspended until the child has exec'd or
// exited, so when clone returns the child's verdict is already in our memory: a ChildError it
// wrote before exiting, or nothing because execve succeeded. A pipe would cost a wait: the
// child closes its CLOEXEC fds only after releasing us, so a read waits until it is scheduled
// again (~0.3 ms in a VM). With init (which reports for the program) and with parent-written
// id maps (plan.parentSetup: a fork-like clone, the child waits on a sync pipe while this
// thread writes its maps) the verdict comes through the CLOEXEC error pipe: EOF means execve
// succeeded.
//
// A spawn runs in three phases (SpawnJob): Prepare (parse the plan, make the pipes; needs the
// JavaScript thread), Run (clone and wait for the child's verdict; plain system calls, so it
// may run on another thread: spawnAsync does it on a spawner thread, spawner.h, so the event
// loop is not blocked while the child sets up) and Finish (the result object and the pidfd
// watcher; JavaScript thread again).
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addon.h"
#include "child_handle.h"
#include "clone.h"
#include "discard.h"
#include "parent_setup.h"
#include "plan.h"
#include "spawner.h"
#include "teardown.h"
#include "unique_fd.h"

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace nsjail {
namespace {

struct Pipe {
  UniqueFd read, write;
};

int MakePipe(Pipe* p) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) return errno;
  p->read.reset(fds[0]);
  p->write.reset(fds[1]);
  return 0;
}

// A CLOEXEC duplicate at fd >= 3, so that the child's dup2 onto 0..2 clobbers no source.
int DupHigh(int fd, UniqueFd* out) {
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) return errno;
  out->reset(d);
  return 0;
}

// Our own CLOEXEC fd moved to >= 3 if it is not already (only if 0..2 were closed).
int KeepHigh(UniqueFd* fd) { return fd->get() >= 3 ? 0 : DupHigh(fd->get(), fd); }

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

// A pidfd of this process (>= 3, CLOEXEC), opened once and kept: a child that has just armed
// its parent-death signal polls it to learn whether this process died before that (see
// child.cc). -1 where the kernel has no pidfd_open (< 5.3): the child then compares getppid().
int SelfPidfd() {
  static const int fd = [] {
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
    if (!pidfd || KeepHigh(&pidfd) != 0) return -1;
    return pidfd.release();
  }();
  return fd;
}

// What went wrong before the program ran; lib/spawn.ts turns it into an IsolationError.
struct SpawnFailure {
  const char* where = nullptr;  // null: no failure
  std::string syscall;
  int err = 0;
  int step = 0;
  int candidate = -1;
};

void Reap(pid_t pid) {
  while (::waitpid(pid, nullptr, __WALL) < 0 && errno == EINTR) {
  }
}

class SpawnJob {
 public:
  // `synchronous`: Prepare, Run and Finish happen within one call on the JavaScript thread,
  // so the run's argv and environment are read in place from the caller's Buffers (plan.h).
  explicit SpawnJob(bool synchronous) : synchronous_(synchronous) {}
  SpawnJob(const SpawnJob&) = delete;
  SpawnJob& operator=(const SpawnJob&) = delete;
  // A child that was cloned but never handed to a watcher (the environment went away while
  // a spawnAsync was under way) is killed and reaped here: nothing is left behind.
  ~SpawnJob() {
    if (pid_ <= 0 || handed_off_ || failure_.where) return;
    ::kill(pid_, SIGKILL);  // not reaped yet, so the pid is still this child
    Reap(pid_);
  }

  // Parses the plan and makes the pipes. False with a TypeError pending for a malformed plan.
  bool Prepare(Napi::Env env, const Napi::Object& plan_object) {
    auto base = std::make_shared<PlanStorage>();
    std::string reason;
    if (!base->Parse(plan_object, &reason)) {
      Napi::TypeError::New(env, "spawnIsolated: malformed native plan: " + reason).ThrowAsJavaScriptException();
      return false;
    }
    return Prepare(env, std::move(base), plan_object);
  }

  // The same for a run of a parsed plan (a prepared sandbox's, or the one just parsed).
  bool Prepare(Napi::Env env, std::shared_ptr<const PlanStorage> base, const Napi::Object& run_object) {
    base_ = std::move(base);
    std::string reason;
    if (!run_.Parse(run_object, *base_, synchronous_, &reason)) {
      Napi::TypeError::New(env, "spawnIsolated: malformed native plan: " + reason).ThrowAsJavaScriptException();
      return false;
    }
    run_.Apply(*base_, &child_);
    // A worker being terminated makes every later property read fail, and Parse would read
    // such a field as absent (a step's flags as 0): a plan parsed while the environment could
    // no longer run JavaScript is not to be trusted. The flag only ever goes one way, so if
    // JavaScript can still run now, every read above succeeded (a prepared plan's were checked
    // so when it was parsed).
    if (!CanCallIntoJs(env)) return false;
    // An fd given for stdio must be open now: checked before any pipe is made here, which
    // could otherwise take a closed fd's number and be passed on in its place.
    for (int i = 0; i < 3 && !failure_.where; i++) {
      if (run_.stdio[i].kind == StdioRequest::kFd && ::fcntl(run_.stdio[i].fd, F_GETFD) < 0) Fail("stdio", "fcntl", errno, i);
    }
    for (int i = 0; i < 3 && !failure_.where; i++) PrepareStdio(i);
    if (failure_.where) return true;
    if (child_.die_with_parent) child_.parent_pidfd = SelfPidfd();
    // The child's verdict: in our memory when it borrows it until exec (see ChildPlan), else
    // through the error pipe.
    if ((base_->clone_flags & (CLONE_VM | CLONE_VFORK)) == (CLONE_VM | CLONE_VFORK) && child_.init_fd < 0) {
      child_.error_slot = &verdict_;
    } else {
      if (int err = MakePipe(&errors_)) return Fail("parent", "pipe2", err);
      child_.error_fd = errors_.write.get();
    }
    // Parent-written id maps (parent_setup.cc): the clone is then without CLONE_VM|CLONE_VFORK
    // (lib/plan.ts) and the child waits on this pipe until the maps are written.
    if (base_->NeedsSync()) {
      // A child that waits for us while we wait for its exec (CLONE_VFORK) would never go on.
      if (base_->clone_flags & CLONE_VFORK) return Fail("parent", "clone", EINVAL);
      if (int err = MakePipe(&sync_)) return Fail("parent", "pipe2", err);
      child_.sync_fd[0] = sync_.read.get();
      child_.sync_fd[1] = sync_.write.get();
    }
    // init writes the program's wait status here before it exits (lib/init.ts reads it).
    if (child_.init_fd >= 0) {
      // Our own copy of init's fd: lib/init.ts's is fs's, which a worker's exit closes (Node
      // closes the fds a worker opened through fs) perhaps while a spawner thread still clones
      // with it, and its number could by then name another file.
      if (int err = DupHigh(child_.init_fd, &init_)) return Fail("parent", "fcntl", err);
      child_.init_fd = init_.get();
      if (int err = MakePipe(&status_)) return Fail("parent", "pipe2", err);
      if (::fcntl(status_.read.get(), F_SETFL, O_NONBLOCK) < 0) return Fail("parent", "fcntl", errno);
      child_.status_fd = status_.write.get();
    }
    return true;
  }

  // Clones and waits for the child's verdict. No N-API: may run on any thread.
  void Run() {
    if (failure_.where) return;
    CloneResult cloned = CloneChild({base_->clone_flags, RunChild, &child_, base_->engine, base_->host_id});
    if (cloned.pid <= 0) {
      Fail("parent", cloned.syscall, cloned.err);
      return;
    }
    pid_ = cloned.pid;
    pidfd_.reset(cloned.pidfd);

    errors_.write.reset();
    status_.write.reset();
    for (auto& fd : child_end_) fd.reset();
    null_in_.reset();
    null_out_.reset();  // the discard thread sees end of file once the sandbox closed its copies
    if (base_->NeedsSync()) {
      sync_.read.reset();
      if (base_->wants_info) {
        // The child waits: its namespaces are there to be read, and nothing has run in them.
        ReadNamespaceIds();
        if (int err = WriteInfo()) {
          ::kill(pid_, SIGKILL);
          Reap(pid_);
          Fail("parent", "write", err);
          return;
        }
      }
      if (base_->userns_block_fd >= 0) {
        // The caller writes the id maps meanwhile (bubblewrap's --userns-block-fd).
        char byte;
        while (::read(base_->userns_block_fd, &byte, 1) < 0 && errno == EINTR) {
        }
      }
    }
    if (!base_->parent_setup.empty()) {
      ParentSetupResult setup = RunParentSetup(base_->parent_setup, pid_);
      if (setup.err != 0) {
        ::kill(pid_, SIGKILL);  // not reaped yet, so the pid is still this child
        Reap(pid_);
        Fail("parent-setup", setup.syscall, setup.err, setup.index, setup.status);
        return;
      }
    }
    if (base_->NeedsSync()) {
      if (::write(sync_.write.get(), "", 1) != 1) {
        int err = errno;
        ::kill(pid_, SIGKILL);
        Reap(pid_);
        Fail("parent", "write", err);
        return;
      }
      sync_.write.reset();
    }

    if (child_.error_slot) {
      // clone has returned: the child has exec'd (nothing written) or exited.
      if (__atomic_load_n(&verdict_.step, __ATOMIC_ACQUIRE) != kStepNone) {
        Reap(pid_);
        Fail("child", "", verdict_.err, verdict_.step, verdict_.candidate);
      }
      return;
    }
    ChildError report{};
    ssize_t n;
    do {
      n = ::read(errors_.read.get(), &report, sizeof report);
    } while (n < 0 && errno == EINTR);
    if (n != 0) {
      // The child failed before exec (or the pipe did): it has exited or is about to.
      Reap(pid_);
      if (n != static_cast<ssize_t>(sizeof report)) {
        Fail("parent", "read", n < 0 ? errno : EIO);
      } else {
        Fail("child", "", report.err, report.step, report.candidate);
      }
    }
  }

  // { pid, stdio, child, statusFd } or { error }. Starts watching the child's pidfd.
  Napi::Value Finish(Napi::Env env, Napi::Function on_exit) {
    if (failure_.where) {
      Napi::Object failure = Napi::Object::New(env);
      failure.Set("where", failure_.where);
      failure.Set("syscall", failure_.syscall);
      failure.Set("errno", failure_.err);
      failure.Set("step", failure_.step);
      failure.Set("candidate", failure_.candidate);
      Napi::Object result = Napi::Object::New(env);
      result.Set("error", failure);
      return result;
    }
    handed_off_ = true;  // from here the watcher (or Create, if it fails) owns the child
    napi_value child = ChildHandle::Create(env, pid_, std::move(pidfd_), on_exit, child_.die_with_parent);
    if (!child) return env.Null();  // an exception pending, or the environment going away
    // Our fds go to JavaScript through the environment's registry (teardown.h): if it is torn
    // down before they reach their owners (a net.Socket, lib/init.ts), they are closed then.
    Napi::Array stdio = Napi::Array::New(env, 3);
    for (uint32_t i = 0; i < 3; i++) {
      int fd = parent_end_[i].release();
      TrackFd(env, fd);
      stdio.Set(i, fd);
    }
    int status_fd = status_.read ? status_.read.release() : -1;
    TrackFd(env, status_fd);
    Napi::Object result = Napi::Object::New(env);
    result.Set("pid", pid_);
    result.Set("stdio", stdio);
    result.Set("child", child);
    result.Set("statusFd", status_fd);
    if (base_->wants_info) {
      Napi::Object ids = Napi::Object::New(env);
      for (const auto& id : namespace_ids_) ids.Set(id.first, static_cast<double>(id.second));
      result.Set("namespaceIds", ids);
    }
    return result;
  }

 private:
  bool Fail(const char* where, std::string syscall, int err, int step = 0, int candidate = -1) {
    failure_ = {where, std::move(syscall), err, step, candidate};
    return true;
  }

  // The inode numbers of the child's namespaces (what readlink /proc/PID/ns/NAME shows);
  // one that cannot be read is left out, as bubblewrap does.
  void ReadNamespaceIds() {
    std::string dir = "/proc/" + std::to_string(pid_) + "/ns/";
    for (const std::string& name : base_->info_namespaces) {
      struct stat st;
      if (::stat((dir + name).c_str(), &st) == 0) namespace_ids_.emplace_back(name, st.st_ino);
    }
  }

  // bubblewrap's --info-fd text, written whole, then the fd is closed (its reader sees end of
  // file: the child closed its copy first thing). 0 or an errno.
  int WriteInfo() {
    if (base_->info_fd < 0) return 0;
    std::string text = "{\n    \"child-pid\": " + std::to_string(pid_);
    for (const auto& id : namespace_ids_) text += ",\n    \"" + id.first + "-namespace\": " + std::to_string(id.second);
    text += "\n}\n";
    int err = 0;
    for (size_t done = 0; done < text.size();) {
      ssize_t n = ::write(base_->info_fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n < 0 ? errno : EIO;
        break;
      }
      done += static_cast<size_t>(n);
    }
    ::close(base_->info_fd);
    return err;
  }

  void PrepareStdio(int i) {
    const StdioRequest& req = run_.stdio[i];
    int err = 0;
    const char* syscall = "fcntl";
    switch (req.kind) {
      case StdioRequest::kPipe: {
        Pipe p;
        syscall = "pipe2";
        if ((err = MakePipe(&p)) != 0) break;
        // fd 0 is read by the child; fd 1 and 2 are written by it.
        child_end_[i] = std::move(i == 0 ? p.read : p.write);
        parent_end_[i] = std::move(i == 0 ? p.write : p.read);
        syscall = "fcntl";
        err = KeepHigh(&child_end_[i]);
        break;
      }
      case StdioRequest::kNull: {
        // No host inode (a /dev/null could be fchmod'ed by the program): stdin is an empty
        // pipe without a writer (reads see end of file), stdout and stderr share a pipe the
        // discard thread drains (discard.h).
        UniqueFd& end = i == 0 ? null_in_ : null_out_;
        if (!end) {
          Pipe p;
          syscall = "pipe2";
          if ((err = MakePipe(&p)) != 0) break;
          if (i == 0) {
            end = std::move(p.read);
          } else {
            syscall = "fcntl";
            if (::fcntl(p.read.get(), F_SETFL, O_NONBLOCK) < 0) {
              err = errno;
              break;
            }
            syscall = "epoll_ctl";
            if ((err = DiscardOutput(p.read.release())) != 0) break;
            end = std::move(p.write);
          }
          syscall = "fcntl";
          if ((err = KeepHigh(&end)) != 0) break;
        }
        child_.stdio[i] = end.get();
        return;
      }
      case StdioRequest::kFd:
        err = DupHigh(req.fd, &child_end_[i]);
        break;
      case StdioRequest::kClose:
        break;
    }
    if (err != 0) {
      Fail("stdio", syscall, err, i);
      return;
    }
    child_.stdio[i] = child_end_[i].get();
  }

  const bool synchronous_;
  std::shared_ptr<const PlanStorage> base_;  // the fixed part, perhaps shared with other spawns
  RunStorage run_;                            // this run's argv, envp, stdio, step changes
  ChildPlan child_{};                         // what the child reads: base_ with run_ applied
  // The child's ends (closed after clone) and ours (handed to JavaScript).
  UniqueFd child_end_[3], parent_end_[3], init_;
  UniqueFd null_in_, null_out_;  // the child's ends for 'ignore' (closed after clone)
  Pipe errors_, sync_, status_;
  ChildError verdict_{kStepNone, 0, -1};  // the child's error_slot (CLONE_VM spawns)
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  std::vector<std::pair<std::string, unsigned long long>> namespace_ids_;
  bool handed_off_ = false;
  SpawnFailure failure_;
};

}  // namespace

class AsyncSpawns;

// One spawnAsync call: Run() on a spawner thread, Finish() back on the JavaScript thread.
class AsyncSpawn : public SpawnerTask {
 public:
  AsyncSpawn(AsyncSpawns* owner, std::unique_ptr<SpawnJob> job, Napi::Function on_exit, Napi::Function on_done)
      : SpawnerTask(owner), owner_(owner), job_(std::move(job)), on_exit_(Napi::Persistent(on_exit)),
        on_done_(Napi::Persistent(on_done)) {}

  void Run() override;

  // Calls onDone with what spawn() would return, or with { thrown } if making the result
  // threw (the child is then already killed and reaped).
  void Finish(Napi::Env env) {
    Napi::HandleScope scope(env);
    Napi::Value result = job_->Finish(env, on_exit_.Value());
    if (env.IsExceptionPending()) {
      Napi::Object thrown = Napi::Object::New(env);
      thrown.Set("thrown", env.GetAndClearPendingException().Value());
      result = thrown;
    }
    // What the result does not own (a failed spawn's pidfd and pipes) is closed before
    // JavaScript sees the result, as spawn() does: code awaiting it (run as microtasks
    // inside the callback) sees no fd of this spawn left. The child is handed off or reaped.
    job_.reset();
    on_done_.MakeCallback(env.Global(), {result});
    ReportCallbackException(env);
  }

 private:
  AsyncSpawns* owner_;
  std::unique_ptr<SpawnJob> job_;  // ~SpawnJob kills and reaps a child never handed to a watcher
  Napi::FunctionReference on_exit_, on_done_;
};

// The spawnAsync calls of one environment (the main thread's or a worker's): finished ones
// come back from the spawner threads through a uv_async on its loop, which keeps the loop
// alive while any is under way. When the environment goes away, so do they: those not
// started are dropped, those running are waited for, and every child they cloned is killed
// and reaped (~SpawnJob).
class AsyncSpawns {
 public:
  static AsyncSpawns* For(Napi::Env env) {
    AddonData* data = GetAddonData(env);
    if (!data->async_spawns) data->async_spawns = new AsyncSpawns(env);
    return data->async_spawns;
  }

  // JavaScript thread.
  void Submit(AsyncSpawn* spawn) {
    if (pending_++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(async_));
    SubmitToSpawner(spawn);
  }

  // Spawner thread (or this one, see SubmitToSpawner).
  void Complete(AsyncSpawn* spawn) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.push_back(spawn);
    }
    uv_async_send(async_);
  }

 private:
  explicit AsyncSpawns(Napi::Env env) : env_(env) {
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    async_ = new uv_async_t;
    async_->data = this;
    uv_async_init(loop, async_, [](uv_async_t* handle) { static_cast<AsyncSpawns*>(handle->data)->Deliver(); });
    uv_unref(reinterpret_cast<uv_handle_t*>(async_));
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
  }

  std::vector<AsyncSpawn*> TakeDone() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::move(done_);
  }

  void Deliver() {
    Napi::Env env(env_);
    Napi::HandleScope scope(env);
    std::vector<AsyncSpawn*> done = TakeDone();
    pending_ -= done.size();
    if (pending_ == 0) uv_unref(reinterpret_cast<uv_handle_t*>(async_));
    for (AsyncSpawn* spawn : done) {
      // Checked each time: a callback may end a worker (process.exit()) halfway through.
      if (CanCallIntoJs(env_)) spawn->Finish(env);
      delete spawn;
    }
  }

  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<AsyncSpawns*>(arg);
    for (SpawnerTask* task : CancelSpawnerTasks(self)) delete task;
    for (AsyncSpawn* spawn : self->TakeDone()) delete spawn;
    GetAddonData(Napi::Env(self->env_))->async_spawns = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(self->async_), [](uv_handle_t* handle) {
      delete static_cast<AsyncSpawns*>(handle->data);
      delete reinterpret_cast<uv_async_t*>(handle);
    });
  }

  napi_env env_;
  uv_async_t* async_;
  std::mutex mutex_;
  std::vector<AsyncSpawn*> done_;  // guarded by mutex_
  size_t pending_ = 0;             // submitted and not yet delivered; JavaScript thread only
};

void AsyncSpawn::Run() {
  job_->Run();
  owner_->Complete(this);
}

namespace {

bool CheckArguments(const Napi::CallbackInfo& info, size_t functions, const char* usage) {
  bool ok = info[0].IsObject();
  for (size_t i = 1; i <= functions; i++) ok = ok && info[i].IsFunction();
  if (!ok) Napi::TypeError::New(info.Env(), usage).ThrowAsJavaScriptException();
  return ok;
}

}  // namespace

// spawn(plan, onExit) -> { pid, stdio: [fd|-1 x3], child, statusFd } | { error }
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArguments(info, 1, "spawn(plan, onExit): bad arguments")) return env.Null();
  SpawnJob job(true);
  if (!job.Prepare(env, info[0].As<Napi::Object>())) return env.Null();
  job.Run();
  return job.Finish(env, info[1].As<Napi::Function>());
}

// spawnAsync(plan, onExit, onDone): the same, with clone and the wait for exec off the
// JavaScript thread; onDone receives what spawn() would return.
Napi::Value SpawnAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArguments(info, 2, "spawnAsync(plan, onExit, onDone): bad arguments")) return env.Null();
  auto job = std::make_unique<SpawnJob>(false);
  if (!job->Prepare(env, info[0].As<Napi::Object>())) return env.Null();
  AsyncSpawns* spawns = AsyncSpawns::For(env);
  spawns->Submit(new AsyncSpawn(spawns, std::move(job), info[1].As<Napi::Function>(), info[2].As<Napi::Function>()));
  return env.Undefined();
}

// preparePlan(plan) -> a PreparedPlan: the plan's fixed part parsed once (plan.h).
Napi::Value PreparePlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArguments(info, 0, "preparePlan(plan): bad arguments")) return env.Null();
  return GetAddonData(env)->prepared_constructor.New({info[0]});
}

// spawnPrepared(prepared, run, onExit): spawn() of a prepared plan with this run's part.
Napi::Value SpawnPrepared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PreparedPlan* prepared = PreparedPlan::From(env, info[0]);
  if (!prepared) return env.Null();
  if (!info[1].IsObject() || !info[2].IsFunction()) {
    Napi::TypeError::New(env, "spawnPrepared(prepared, run, onExit): bad arguments").ThrowAsJavaScriptException();
    return env.Null();
  }
  SpawnJob job(true);
  if (!job.Prepare(env, prepared->storage(), info[1].As<Napi::Object>())) return env.Null();
  job.Run();
  return job.Finish(env, info[2].As<Napi::Function>());
}

// spawnPreparedAsync(prepared, run, onExit, onDone): spawnAsync() of a prepared plan.
Napi::Value SpawnPreparedAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PreparedPlan* prepared = PreparedPlan::From(env, info[0]);
  if (!prepared) return env.Null();
  if (!info[1].IsObject() || !info[2].IsFunction() || !info[3].IsFunction()) {
    Napi::TypeError::New(env, "spawnPreparedAsync(prepared, run, onExit, onDone): bad arguments").ThrowAsJavaScriptException();
    return env.Null();
  }
  auto job = std::make_unique<SpawnJob>(false);
  if (!job->Prepare(env, prepared->storage(), info[1].As<Napi::Object>())) return env.Null();
  AsyncSpawns* spawns = AsyncSpawns::For(env);
  spawns->Submit(new AsyncSpawn(spawns, std::move(job), info[2].As<Napi::Function>(), info[3].As<Napi::Function>()));
  return env.Undefined();
}

}  // namespace nsjail
