// Per-environment state of the addon (one per Node main thread or worker).
#pragma once
#include <napi.h>

namespace nsjail {

class AsyncSpawns;  // spawn.cc
struct Leftovers;   // teardown.cc

struct AddonData {
  Napi::FunctionReference child_constructor;
  Napi::FunctionReference prepared_constructor;  // PreparedPlan (plan.h)
  napi_ref probe = nullptr;  // a native function that does nothing, for CanCallIntoJs
  AsyncSpawns* async_spawns = nullptr;  // made by the first spawnAsync, freed with the environment
  Leftovers* leftovers = nullptr;       // fds and cgroups to reclaim with the environment
};

AddonData* GetAddonData(Napi::Env env);

// False while the environment is being torn down and JavaScript can no longer run (a worker
// exiting): callbacks from libuv must then not build results, or node-addon-api aborts.
bool CanCallIntoJs(napi_env env);

// After calling into JavaScript from a libuv callback: an exception the callback threw goes
// to Node's uncaughtException, unless the environment is going away (a worker's
// process.exit() inside the callback), when there is nobody left to tell.
void ReportCallbackException(Napi::Env env);

// Entry points, one file each.
Napi::Value Spawn(const Napi::CallbackInfo& info);      // spawn.cc
Napi::Value SpawnAsync(const Napi::CallbackInfo& info); // spawn.cc
Napi::Value PreparePlan(const Napi::CallbackInfo& info);          // spawn.cc
Napi::Value SpawnPrepared(const Napi::CallbackInfo& info);        // spawn.cc
Napi::Value SpawnPreparedAsync(const Napi::CallbackInfo& info);   // spawn.cc
void InitSyscalls(Napi::Env env, Napi::Object exports);  // syscalls.cc
void InitNetns(Napi::Env env, Napi::Object exports);     // netns.cc
void InitSyscallTable(Napi::Env env, Napi::Object exports);  // syscall_table.cc
Napi::Object Init(Napi::Env env, Napi::Object exports);  // addon.cc

}  // namespace nsjail
