// Module init: the binding's exports (types/native.d.ts is their typed contract).
#include <sched.h>

#include "addon.h"
#include "child_handle.h"
#include "hostids.h"
#include "plan.h"
#include "spawner.h"
#include "teardown.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace nsjail {

AddonData* GetAddonData(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

bool CanCallIntoJs(napi_env env) {
  // Raw N-API with its statuses: a call into a function of ours that does nothing fails exactly
  // when the environment can no longer run JavaScript. (Not a global such as Object: that one
  // may be the program's own code, and a synchronous spawn must run none before exec.)
  AddonData* data = nullptr;
  napi_value probe, global, result;
  if (napi_get_instance_data(env, reinterpret_cast<void**>(&data)) != napi_ok || !data || !data->probe) return false;
  if (napi_get_reference_value(env, data->probe, &probe) != napi_ok || !probe) return false;
  if (napi_get_global(env, &global) != napi_ok) return false;
  if (napi_call_function(env, global, probe, 0, nullptr, &result) == napi_ok) return true;
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
  return false;
}

void ReportCallbackException(Napi::Env env) {
  if (!env.IsExceptionPending()) return;
  Napi::Error e = env.GetAndClearPendingException();
  if (CanCallIntoJs(env)) napi_fatal_exception(env, e.Value());
}

namespace {

Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("CLONE_NEWNS", CLONE_NEWNS);
  c.Set("CLONE_NEWUTS", CLONE_NEWUTS);
  c.Set("CLONE_NEWIPC", CLONE_NEWIPC);
  c.Set("CLONE_NEWUSER", CLONE_NEWUSER);
  c.Set("CLONE_NEWPID", CLONE_NEWPID);
  c.Set("CLONE_NEWNET", CLONE_NEWNET);
  c.Set("CLONE_NEWCGROUP", CLONE_NEWCGROUP);
  c.Set("CLONE_NEWTIME", CLONE_NEWTIME);
  c.Set("CLONE_VM", CLONE_VM);
  c.Set("CLONE_VFORK", CLONE_VFORK);
  return c;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->child_constructor = Napi::Persistent(ChildHandle::DefineClass(env));
  data->prepared_constructor = Napi::Persistent(PreparedPlan::DefineClass(env));
  Napi::Function probe = Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return info.Env().Undefined(); }, "probe");
  napi_create_reference(env, probe, 1, &data->probe);
  env.SetInstanceData(data);
  exports.Set("spawn", Napi::Function::New(env, Spawn, "spawn"));
  exports.Set("spawnAsync", Napi::Function::New(env, SpawnAsync, "spawnAsync"));
  exports.Set("preparePlan", Napi::Function::New(env, PreparePlan, "preparePlan"));
  exports.Set("spawnPrepared", Napi::Function::New(env, SpawnPrepared, "spawnPrepared"));
  exports.Set("spawnPreparedAsync", Napi::Function::New(env, SpawnPreparedAsync, "spawnPreparedAsync"));
  exports.Set("constants", Constants(env));
  InitSyscalls(env, exports);
  InitNetns(env, exports);
  InitSyscallTable(env, exports);
  InitHostIds(env, exports);
  // Before any sandbox exists: its hook must run after theirs (teardown.cc).
  InitTeardown(env, exports);
  // The spawner threads' ancestor, started while the first loading thread is still in the
  // process's own namespaces (spawner.h).
  StartSpawnerFactory();
  return exports;
}

}  // namespace nsjail

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return nsjail::Init(env, exports); }

NODE_API_MODULE(nsjail_node, InitAddon)
