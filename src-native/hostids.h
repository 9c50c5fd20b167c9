// Parent side of host ids: see hostids.cc.
#pragma once
#include <napi.h>
#include <sys/types.h>

#include <mutex>
#include <vector>

namespace nsjail {

// For the lifetime of this guard the calling thread (and only it: raw system calls) runs as
// host id `id` (real and effective uid and gid, no supplementary groups), so that a clone
// made meanwhile creates a user namespace owned by that id: the kernel charges per-user
// counts (inotify instances, message queue bytes, processes, user namespaces) to a user
// namespace's owner. id < 0: does nothing. On failure err() is set and nothing stays changed.
class CloneAsHostId {
 public:
  explicit CloneAsHostId(long id);
  ~CloneAsHostId();
  CloneAsHostId(const CloneAsHostId&) = delete;
  CloneAsHostId& operator=(const CloneAsHostId&) = delete;

  int err() const { return err_; }
  const char* syscall() const { return syscall_; }

 private:
  void Switch(long id);
  void Fail(int err, const char* syscall);

  bool active_;
  bool changed_ = false;
  int err_ = 0;
  const char* syscall_ = "";
  uid_t ruid_ = 0, euid_ = 0, suid_ = 0;
  gid_t rgid_ = 0, egid_ = 0, sgid_ = 0;
  std::vector<gid_t> groups_;
  int securebits_ = -1, dumpable_ = -1;
  std::unique_lock<std::mutex> lock_;  // released after the destructor has switched back
};

void InitHostIds(Napi::Env env, Napi::Object exports);

}  // namespace nsjail
