// What an environment leaves behind when it goes away (see teardown.h).
//
// A worker that is terminated stops running JavaScript at once: no finally block, no 'exit'
// listener, no promise callback runs any more. What its JavaScript would have released is
// therefore recorded here too, and released by the environment's clean-up hook, which Node
// runs for the main environment and for every worker on the way out. The hook is added at
// module init, before any ChildHandle or AsyncSpawns adds its own; Node runs the hooks in
// reverse order, so by the time this one runs the environment's sandboxes have been killed
// and reaped (or handed to the orphan reaper) and its spawns in flight cancelled.
#include "teardown.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "addon.h"

namespace nsjail {

// A sandbox's cgroup as lib/cgroups.ts made it: one directory per hierarchy, and the
// parents it created and removes after it when they are empty.
struct TrackedCgroup {
  std::vector<std::string> dirs;
  std::vector<std::string> parents;
  bool keep = false;  // dieWithParent: false: its processes outlive the environment
};

struct Leftovers {
  std::unordered_set<int> fds;
  std::map<uint32_t, TrackedCgroup> cgroups;
  uint32_t next_id = 1;
};

namespace {

Leftovers& Of(Napi::Env env) {
  AddonData* data = GetAddonData(env);
  if (!data->leftovers) data->leftovers = new Leftovers();
  return *data->leftovers;
}

void SleepMillis(long ms) {
  timespec ts{0, ms * 1000000L};
  while (::nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

bool ReadFile(const std::string& path, std::string* out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[4096];
  out->clear();
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0;
    out->append(buf, static_cast<size_t>(n));
  }
}

bool WriteFile(const std::string& path, const char* data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return false;
  size_t len = std::char_traits<char>::length(data);
  return ::write(fd.get(), data, len) == static_cast<ssize_t>(len);
}

// SIGKILL to everything in the cgroup's directories until they are empty (bounded): cgroup.kill
// where the kernel has it (v2, Linux 5.14), else each pid listed in cgroup.procs.
void KillCgroup(const TrackedCgroup& cg) {
  for (const std::string& dir : cg.dirs) WriteFile(dir + "/cgroup.kill", "1");
  for (int round = 0; round < 200; round++) {
    bool any = false;
    for (const std::string& dir : cg.dirs) {
      std::string procs;
      if (!ReadFile(dir + "/cgroup.procs", &procs)) continue;
      const char* p = procs.c_str();
      while (*p) {
        char* end = nullptr;
        long pid = std::strtol(p, &end, 10);
        if (end == p) break;
        if (pid > 0) {
          ::kill(static_cast<pid_t>(pid), SIGKILL);
          any = true;
        }
        p = end;
        while (*p == '\n') p++;
      }
    }
    // A v1 freezer left FROZEN (a JavaScript kill cut short between freeze and thaw when its
    // thread was terminated) holds SIGKILLed tasks: thaw it so that they die.
    for (const std::string& dir : cg.dirs) WriteFile(dir + "/freezer.state", "THAWED");
    if (!any) return;
    SleepMillis(5);
  }
}

// rmdir of each directory; true once all are gone. Then the parents, if they are empty.
bool RemoveCgroup(const TrackedCgroup& cg) {
  bool done = true;
  for (const std::string& dir : cg.dirs) {
    if (::rmdir(dir.c_str()) < 0 && errno != ENOENT) done = false;
  }
  if (!done) return false;
  for (const std::string& parent : cg.parents) ::rmdir(parent.c_str());  // busy: another sandbox's
  return true;
}

// cgroups of dieWithParent: false sandboxes whose environment is gone: removed once empty.
struct OrphanCgroups {
  std::mutex mutex;
  std::vector<TrackedCgroup> list;
};

OrphanCgroups& TheOrphanCgroups() {
  static OrphanCgroups* orphans = new OrphanCgroups();  // never destroyed: see TheReaper
  return *orphans;
}

// Removes the orphans that are empty by now; true if none but those of running
// dieWithParent: false sandboxes (kept) is left.
bool SweepOrphanCgroups() {
  OrphanCgroups& o = TheOrphanCgroups();
  std::lock_guard<std::mutex> lock(o.mutex);
  bool only_kept = true;
  for (auto it = o.list.begin(); it != o.list.end();) {
    if (RemoveCgroup(*it)) {
      it = o.list.erase(it);
    } else {
      only_kept = only_kept && it->keep;
      ++it;
    }
  }
  return only_kept;
}

// The orphan reaper: one thread, started with the first orphan, that waits on the orphans'
// pidfds and reaps each when it exits. Never destroyed: it may be waiting while the process
// exits and static destructors run.
struct Reaper {
  std::mutex mutex;
  std::vector<std::pair<pid_t, int>> adopted;  // handed over, not yet polled (pid, pidfd)
  int wake = -1;                               // eventfd: something was adopted
  bool started = false;
};

Reaper& TheReaper() {
  static Reaper* reaper = new Reaper();
  return *reaper;
}

void* ReaperMain(void*) {
  sigset_t all;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, nullptr);
  Reaper& r = TheReaper();
  std::vector<std::pair<pid_t, int>> watched;
  std::vector<pollfd> fds;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(r.mutex);
      for (auto& child : r.adopted) watched.push_back(child);
      r.adopted.clear();
    }
    fds.assign(1, pollfd{r.wake, POLLIN, 0});
    for (auto& child : watched) fds.push_back(pollfd{child.second, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;  // EINTR
    if (fds[0].revents) {
      uint64_t n;
      (void)!::read(r.wake, &n, sizeof n);
    }
    bool reaped = false;
    for (size_t i = watched.size(); i-- > 0;) {
      if (!fds[i + 1].revents) continue;
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(watched[i].first), &info, WEXITED | WNOHANG | __WALL) == 0 &&
          info.si_pid == 0) {
        continue;  // not yet
      }
      ::close(watched[i].second);
      watched.erase(watched.begin() + static_cast<long>(i));
      reaped = true;
    }
    if (reaped) SweepOrphanCgroups();
  }
  return nullptr;
}

}  // namespace

void TrackFd(Napi::Env env, int fd) {
  if (fd >= 0) Of(env).fds.insert(fd);
}

uint64_t NextSequence() {
  static std::atomic<uint64_t> sequence{0};
  return sequence.fetch_add(1, std::memory_order_relaxed) + 1;
}

void AdoptOrphan(pid_t pid, UniqueFd pidfd) {
  Reaper& r = TheReaper();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!r.started) {
    r.wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_t id;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    r.started = r.wake >= 0 && ::pthread_create(&id, &attr, ReaperMain, nullptr) == 0;
    pthread_attr_destroy(&attr);
    if (!r.started) {
      // No thread to wait for it: it runs on unreaped, as a child of any exited thread would.
      if (r.wake >= 0) ::close(r.wake);
      r.wake = -1;
      return;
    }
    ::pthread_setname_np(id, "nsjail-reaper");
  }
  r.adopted.emplace_back(pid, pidfd.release());
  uint64_t one = 1;
  (void)!::write(r.wake, &one, sizeof one);
}

namespace {

// closeFd(fd) -> 0 | errno: closes an fd the addon handed out (EBADF for any other).
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
  Leftovers& l = Of(env);
  if (l.fds.erase(fd) == 0) return Napi::Number::New(env, EBADF);
  return Napi::Number::New(env, ::close(fd) < 0 && errno != EINTR ? errno : 0);
}

// releaseFds([fd...]): JavaScript owns these from now on (a net.Socket closes it).
Napi::Value ReleaseFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info[0].IsArray()) {
    Napi::Array fds = info[0].As<Napi::Array>();
    Leftovers& l = Of(env);
    for (uint32_t i = 0; i < fds.Length(); i++) {
      Napi::Value v = fds.Get(i);
      if (v.IsNumber()) l.fds.erase(v.As<Napi::Number>().Int32Value());
    }
  }
  return env.Undefined();
}

Napi::Value NextSequenceJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(NextSequence()));
}

std::vector<std::string> Strings(const Napi::Value& value) {
  std::vector<std::string> out;
  if (!value.IsArray()) return out;
  Napi::Array array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value v = array.Get(i);
    if (v.IsString()) out.push_back(v.As<Napi::String>().Utf8Value());
  }
  return out;
}

// cgroupTrack(dirs, parents, keep, id?) -> id: a new record, or record `id` replaced.
Napi::Value CgroupTrack(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Leftovers& l = Of(env);
  uint32_t id = info[3].IsNumber() ? info[3].As<Napi::Number>().Uint32Value() : l.next_id++;
  // Not ToBoolean(): it fails once the environment is going away, and node-addon-api then
  // goes on with an empty value (a fatal error).
  bool keep = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  l.cgroups[id] = TrackedCgroup{Strings(info[0]), Strings(info[1]), keep};
  return Napi::Number::New(env, id);
}

// cgroupUntrack(id): removed by JavaScript (SandboxCgroup.release).
Napi::Value CgroupUntrack(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info[0].IsNumber()) Of(env).cgroups.erase(info[0].As<Napi::Number>().Uint32Value());
  return env.Undefined();
}

// cgroupSweepOrphans(): removes the orphaned cgroups that are empty by now.
Napi::Value CgroupSweepOrphans(const Napi::CallbackInfo& info) {
  SweepOrphanCgroups();
  return info.Env().Undefined();
}

// How long an ending environment waits for its killed sandboxes' cgroups to empty. Only a
// sandbox that cannot die (a process stuck in the kernel) makes it wait that long.
constexpr int kCgroupWaitMillis = 10000;

void OnEnvCleanup(void* arg) {
  auto* data = static_cast<AddonData*>(arg);
  Leftovers* l = data->leftovers;
  if (!l) return;
  data->leftovers = nullptr;
  for (int fd : l->fds) ::close(fd);
  for (auto& entry : l->cgroups) {
    TrackedCgroup& cg = entry.second;
    bool removed = false;
    if (!cg.keep) {
      KillCgroup(cg);
      // Killed processes leave their cgroup only once they have exited and been reaped, which
      // a busy machine can take a while to do (seconds, with both cores taken): wait up to
      // kCgroupWaitMillis, then leave it to the sweep.
      for (int i = 0; i < kCgroupWaitMillis / 5 && !(removed = RemoveCgroup(cg)); i++) SleepMillis(5);
    }
    if (!removed && !RemoveCgroup(cg)) {
      OrphanCgroups& o = TheOrphanCgroups();
      std::lock_guard<std::mutex> lock(o.mutex);
      o.list.push_back(std::move(cg));
    }
  }
  delete l;
  // Killed sandboxes' cgroups that were still busy, of this or an earlier environment: a
  // process that ends (the last environment) must not leave them. Bounded the same way.
  for (int i = 0; i < kCgroupWaitMillis / 5 && !SweepOrphanCgroups(); i++) SleepMillis(5);
}

}  // namespace

void InitTeardown(Napi::Env env, Napi::Object exports) {
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("releaseFds", Napi::Function::New(env, ReleaseFds, "releaseFds"));
  exports.Set("nextSequence", Napi::Function::New(env, NextSequenceJs, "nextSequence"));
  exports.Set("cgroupTrack", Napi::Function::New(env, CgroupTrack, "cgroupTrack"));
  exports.Set("cgroupUntrack", Napi::Function::New(env, CgroupUntrack, "cgroupUntrack"));
  exports.Set("cgroupSweepOrphans", Napi::Function::New(env, CgroupSweepOrphans, "cgroupSweepOrphans"));
  napi_add_env_cleanup_hook(env, OnEnvCleanup, GetAddonData(env));
}

}  // namespace nsjail
