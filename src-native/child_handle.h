// Parent side: one running sandbox, watched through its pidfd on the libuv loop.
#pragma once
#include <napi.h>
#include <sys/types.h>
#include <uv.h>

#include "unique_fd.h"

namespace nsjail {

// Exposed to JavaScript as NativeChild (types/native.d.ts). Holds itself alive until the
// child has been reaped, so a handle the program dropped still reports the exit.
class ChildHandle : public Napi::ObjectWrap<ChildHandle> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  // Starts watching `pidfd`; `on_exit` is called once with the exit status object. Returns
  // null when no handle could be made (the environment is going away, or uv_poll failed:
  // then with an exception pending); the child is then killed and reaped.
  // `die_with_parent`: the child is killed with the environment (else handed to the orphan
  // reaper, teardown.h).
  static napi_value Create(Napi::Env env, pid_t pid, UniqueFd pidfd, Napi::Function on_exit, bool die_with_parent);

  explicit ChildHandle(const Napi::CallbackInfo& info);
  ~ChildHandle() override;

 private:
  Napi::Value Kill(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value GetPid(const Napi::CallbackInfo& info);

  bool Start(Napi::Env env);
  void KillAndReap();
  void OnReadable();
  void StopWatching();
  static void OnEnvCleanup(void* arg);

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  uv_poll_t* poll_ = nullptr;  // freed in its close callback
  Napi::FunctionReference on_exit_;
  napi_env env_ = nullptr;
  bool reaped_ = false;
  bool die_with_parent_ = true;
  // This process's RSS high-water mark when the child was cloned: the child inherits it at
  // exec (CLONE_VM, or a fork's copy), so an ru_maxrss not above it says nothing of the program.
  long spawner_max_rss_kib_ = 0;
};

}  // namespace nsjail
