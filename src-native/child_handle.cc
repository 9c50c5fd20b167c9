// Parent side: one running sandbox, watched through its pidfd on the libuv loop.
//
// No SIGCHLD handler and no waitpid(-1): the pidfd becomes readable when the child exits,
// and only then is that one pid reaped, so Node's child_process keeps reaping its own.
#include "child_handle.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addon.h"
#include "teardown.h"

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

namespace nsjail {
namespace {

double Micros(const timeval& tv) { return static_cast<double>(tv.tv_sec) * 1e6 + static_cast<double>(tv.tv_usec); }

// maxRssKiB is null when it is not above `spawner_max_rss_kib` (see ChildHandle).
Napi::Object ExitObject(Napi::Env env, int status, const rusage& ru, long spawner_max_rss_kib) {
  Napi::Object result = Napi::Object::New(env);
  bool exited = WIFEXITED(status);
  result.Set("exitCode", exited ? Napi::Value(Napi::Number::New(env, WEXITSTATUS(status))) : env.Null());
  result.Set("signal", WIFSIGNALED(status) ? Napi::Value(Napi::Number::New(env, WTERMSIG(status))) : env.Null());
  result.Set("coreDumped", Napi::Boolean::New(env, WIFSIGNALED(status) && WCOREDUMP(status)));
  Napi::Object usage = Napi::Object::New(env);
  usage.Set("userMicros", Micros(ru.ru_utime));
  usage.Set("systemMicros", Micros(ru.ru_stime));
  usage.Set("maxRssKiB", ru.ru_maxrss > spawner_max_rss_kib ? Napi::Value(Napi::Number::New(env, static_cast<double>(ru.ru_maxrss)))
                                                            : Napi::Value(env.Null()));
  result.Set("rusage", usage);
  return result;
}

}  // namespace

Napi::Function ChildHandle::DefineClass(Napi::Env env) {
  return ObjectWrap<ChildHandle>::DefineClass(env, "NativeChild",
                                              {
                                                  InstanceMethod("kill", &ChildHandle::Kill),
                                                  InstanceMethod("ref", &ChildHandle::Ref),
                                                  InstanceMethod("unref", &ChildHandle::Unref),
                                                  InstanceAccessor("pid", &ChildHandle::GetPid, nullptr),
                                              });
}

napi_value ChildHandle::Create(Napi::Env env, pid_t pid, UniqueFd pidfd, Napi::Function on_exit, bool die_with_parent) {
  // Raw N-API with its statuses: once the environment is being torn down (worker.terminate()
  // can begin it at any moment, from another thread) the constructor call fails, and the
  // node-addon-api wrappers would go on with an empty object (a fatal error, or a null this).
  napi_value constructor = nullptr, instance = nullptr;
  void* unwrapped = nullptr;
  AddonData* data = GetAddonData(env);
  if (!data || napi_get_reference_value(env, data->child_constructor, &constructor) != napi_ok || !constructor ||
      napi_new_instance(env, constructor, 0, nullptr, &instance) != napi_ok || !instance ||
      napi_unwrap(env, instance, &unwrapped) != napi_ok || !unwrapped) {
    // Nobody will ever hear of this child: do not leave it running or unreaped.
    ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
    while (::waitpid(pid, nullptr, __WALL) < 0 && errno == EINTR) {
    }
    return nullptr;
  }
  auto* self = static_cast<ChildHandle*>(unwrapped);
  self->pid_ = pid;
  self->pidfd_ = std::move(pidfd);
  self->die_with_parent_ = die_with_parent;
  rusage self_usage{};
  if (::getrusage(RUSAGE_SELF, &self_usage) == 0) self->spawner_max_rss_kib_ = self_usage.ru_maxrss;
  self->env_ = env;
  napi_ref callback = nullptr;
  if (napi_create_reference(env, on_exit, 1, &callback) != napi_ok) {
    self->KillAndReap();
    return nullptr;
  }
  self->on_exit_ = Napi::FunctionReference(env, callback);
  if (!self->Start(env)) return nullptr;
  return instance;
}

ChildHandle::ChildHandle(const Napi::CallbackInfo& info) : ObjectWrap<ChildHandle>(info) {}

ChildHandle::~ChildHandle() {
  if (!reaped_ && env_) napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
  StopWatching();
}

void ChildHandle::KillAndReap() {
  if (reaped_ || !pidfd_) return;
  ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  while (::waitpid(pid_, nullptr, __WALL) < 0 && errno == EINTR) {
  }
  reaped_ = true;
}

bool ChildHandle::Start(Napi::Env env) {
  uv_loop_t* loop = nullptr;
  int rc = napi_get_uv_event_loop(env, &loop) == napi_ok && loop ? 0 : UV_EINVAL;
  if (rc == 0) {
    poll_ = new uv_poll_t;
    poll_->data = this;
    rc = uv_poll_init(loop, poll_, pidfd_.get());
    if (rc != 0) {
      // Not initialised: not a handle uv_close may be given.
      delete poll_;
      poll_ = nullptr;
    }
  }
  if (rc == 0) {
    rc = uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* handle, int, int) {
      static_cast<ChildHandle*>(handle->data)->OnReadable();
    });
  }
  if (rc != 0) {
    // Cannot watch it: do not leave a child nobody will reap.
    StopWatching();
    KillAndReap();
    Napi::Error::New(env, std::string("spawnIsolated: uv_poll on pidfd failed: ") + uv_strerror(rc))
        .ThrowAsJavaScriptException();
    return false;
  }
  ObjectWrap::Ref();  // alive until reaped
  napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
  return true;
}

void ChildHandle::StopWatching() {
  if (!poll_) return;
  uv_poll_stop(poll_);
  uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  poll_ = nullptr;
}

void ChildHandle::OnReadable() {
  int status = 0;
  rusage ru{};
  pid_t r;
  do {
    r = ::wait4(pid_, &status, WNOHANG | __WALL, &ru);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return;  // not yet: a spurious wakeup
  reaped_ = true;
  napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
  StopWatching();
  pidfd_.reset();

  Napi::Env env(env_);
  Napi::HandleScope scope(env);
  if (!CanCallIntoJs(env_)) {  // the environment is going away: nobody is left to tell
    ObjectWrap::Unref();
    return;
  }
  Napi::Value arg = r < 0 ? Napi::Value(env.Null()) : Napi::Value(ExitObject(env, status, ru, spawner_max_rss_kib_));
  Napi::FunctionReference callback = std::move(on_exit_);
  ObjectWrap::Unref();
  callback.MakeCallback(env.Global(), {arg});
  ReportCallbackException(env);
}

// The environment (main thread or a worker) is going away: its sandboxes go with it, except
// those started with dieWithParent: false, which are left running and handed to the orphan
// reaper (teardown.h) so that their exit is still reaped.
void ChildHandle::OnEnvCleanup(void* arg) {
  auto* self = static_cast<ChildHandle*>(arg);
  if (self->reaped_) return;
  self->StopWatching();
  if (self->die_with_parent_) {
    self->KillAndReap();
  } else {
    self->reaped_ = true;  // from here the reaper's
    AdoptOrphan(self->pid_, std::move(self->pidfd_));
  }
  self->pidfd_.reset();
}

Napi::Value ChildHandle::Kill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sig = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : SIGKILL;
  if (reaped_) return Napi::Number::New(env, ESRCH);
  // The pidfd names exactly this process, even if it has exited and its pid been reused.
  long r = ::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0);
  if (r < 0 && errno == ENOSYS) r = ::kill(pid_, sig);  // unreaped, so the pid is still ours
  return Napi::Number::New(env, r < 0 ? errno : 0);
}

Napi::Value ChildHandle::Ref(const Napi::CallbackInfo& info) {
  if (poll_) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

Napi::Value ChildHandle::Unref(const Napi::CallbackInfo& info) {
  if (poll_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

Napi::Value ChildHandle::GetPid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), pid_); }

}  // namespace nsjail
