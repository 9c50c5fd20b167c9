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
  // Starts watching `pidfd`; `on_exit` is called once with the exit status object.
  static Napi::Object Create(Napi::Env env, pid_t pid, UniqueFd pidfd, Napi::Function on_exit);

  explicit ChildHandle(const Napi::CallbackInfo& info);
  ~ChildHandle() override;

 private:
  Napi::Value Kill(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value GetPid(const Napi::CallbackInfo& info);

  bool Start(Napi::Env env);
  void OnReadable();
  void StopWatching();
  static void OnEnvCleanup(void* arg);

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  uv_poll_t* poll_ = nullptr;  // freed in its close callback
  Napi::FunctionReference on_exit_;
  napi_env env_ = nullptr;
  bool reaped_ = false;
};

}  // namespace nsjail
