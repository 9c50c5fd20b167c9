// Parent side: network namespaces and what goes into them, for lib/netns.ts and
// lib/network-host.ts. Named namespaces follow iproute2's layout (a bind mount of the namespace
// on /run/netns/NAME, /run/netns being a shared mount point), so `ip netns` and this library
// see the same ones.
//
// A new network namespace is made on a short-lived thread of our own: unshare(CLONE_NEWNET)
// on a Node thread would move that thread for good. The namespace outlives the thread only
// through what the thread leaves behind: a bind mount, an fd of it, a netlink socket in it.
//
// Every function returns { error: { step, syscall, errno, message } } on failure (never
// throws); lib/ turns that into an IsolationError.
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/netlink.h>

#include <cstring>

#include "addon.h"
#include "child_steps.h"
#include "netlink.h"
#include "teardown.h"
#include "unique_fd.h"

namespace nsjail {
namespace {

Napi::Object Error(Napi::Env env, const char* step, const char* syscall, int err, const std::string& message = "",
                   int index = -1) {
  Napi::Object e = Napi::Object::New(env);
  e.Set("step", step);
  e.Set("syscall", syscall);
  e.Set("errno", err);
  e.Set("message", message);
  e.Set("index", index);
  Napi::Object result = Napi::Object::New(env);
  result.Set("error", e);
  return result;
}

// What the helper thread does once it is alone in a new network namespace.
struct NetnsJob {
  bool loopback_up = false;
  const char* bind_to = nullptr;  // bind-mount the namespace here (a named netns)
  bool want_fds = false;          // hand back an fd of the namespace and a netlink socket in it
  int ns_fd = -1;
  int nl_fd = -1;
  int err = 0;
  const char* syscall = "";
};

void* RunNetnsJob(void* arg) {
  NetnsJob* job = static_cast<NetnsJob*>(arg);
  auto fail = [job](const char* syscall, int err) {
    job->err = err;
    job->syscall = syscall;
    return nullptr;
  };
  if (::unshare(CLONE_NEWNET) < 0) return fail("unshare", errno);
  if (job->loopback_up) {
    Step up{};
    up.op = StepOp::kLoopbackUp;
    if (int err = StepLoopbackUp(up)) return fail("ioctl", err);
  }
  // The thread shares the process's mount namespace, so the bind mount is the host's.
  if (job->bind_to && ::mount("/proc/thread-self/ns/net", job->bind_to, "none", MS_BIND, nullptr) < 0) {
    return fail("mount", errno);
  }
  if (job->want_fds) {
    job->ns_fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (job->ns_fd < 0) return fail("open", errno);
    job->nl_fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (job->nl_fd < 0) return fail("socket", errno);
  }
  return nullptr;
}

// Runs `job` on a new thread in a new network namespace and waits for it. The thread
// starts with every signal blocked, so none of Node's signals is delivered to it.
int RunInNewNetns(NetnsJob* job) {
  sigset_t all, saved;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &saved);
  pthread_t thread;
  int rc = ::pthread_create(&thread, nullptr, RunNetnsJob, job);
  ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (rc != 0) {
    job->err = rc;
    job->syscall = "pthread_create";
    return rc;
  }
  ::pthread_join(thread, nullptr);
  return job->err;
}

// An fd >= 3 (never one of a child's stdio targets), close-on-exec.
int DupHigh(UniqueFd* fd) {
  int high = ::fcntl(fd->get(), F_DUPFD_CLOEXEC, 3);
  if (high < 0) return -errno;
  fd->reset();
  return high;
}

std::string StringArg(const Napi::Value& v) { return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string(); }

// netnsCreate(dir, path, loopback): what `ip netns add NAME` does.
Napi::Value NetnsCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = StringArg(info[0]);
  std::string path = StringArg(info[1]);
  bool loopback = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();  // not ToBoolean: see plan.cc GetFlag

  if (::mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) return Error(env, "netns-dir", "mkdir", errno);
  // The directory must be a shared mount point, so that a namespace unmounted here is also
  // unmounted in mount namespaces made since (and so freed). Upgrading it is done under a
  // lock, as ip does: concurrent upgrades would stack bind mounts.
  {
    UniqueFd lock(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!lock) return Error(env, "netns-dir", "open", errno);
    ::flock(lock.get(), LOCK_EX);  // best effort, as in ip
    bool made_mount_point = false;
    while (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) < 0) {
      if (errno != EINVAL || made_mount_point) return Error(env, "netns-dir", "mount", errno);
      if (::mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) < 0) {
        return Error(env, "netns-dir", "mount", errno);
      }
      made_mount_point = true;
    }
  }

  // O_EXCL: an existing name is an error, never a namespace replaced under someone.
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0));
  if (!file) return Error(env, "netns-create", "open", errno);
  file.reset();

  NetnsJob job;
  job.loopback_up = loopback;
  job.bind_to = path.c_str();
  if (RunInNewNetns(&job) != 0) {
    ::unlink(path.c_str());
    return Error(env, "netns-create", job.syscall, job.err);
  }
  return env.Null();
}

// netnsDelete(path): what `ip netns delete NAME` does. The namespace itself lives on while
// a process is in it or holds an fd of it.
Napi::Value NetnsDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info[0]);
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return Error(env, "netns-delete", "lstat", errno);
  // EINVAL: not a mount point (a file left by a failed `ip netns add`): just remove it.
  if (::umount2(path.c_str(), MNT_DETACH) < 0 && errno != EINVAL) return Error(env, "netns-delete", "umount2", errno);
  if (::unlink(path.c_str()) < 0) return Error(env, "netns-delete", "unlink", errno);
  return env.Null();
}

// nsOpen(path) -> { fd, nstype }: an fd (>= 3, CLOEXEC) of a namespace file and its
// CLONE_NEW* type, so that a wrong kind of file is refused before any process starts.
Napi::Value NsOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info[0]);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error(env, "open", "open", errno);
  int nstype = ::ioctl(fd.get(), NS_GET_NSTYPE);
  if (nstype < 0) return Error(env, "open", "ioctl", errno);  // ENOTTY: not a namespace file
  int high = DupHigh(&fd);
  if (high < 0) return Error(env, "open", "fcntl", -high);
  TrackFd(env, high);  // closed with closeFd (teardown.h)
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", high);
  result.Set("nstype", nstype);
  return result;
}

bool ParseAddress(const Napi::Value& v, IpAddress* out) {
  if (!v.IsObject()) return false;
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value family = o.Get("family"), bytes = o.Get("address"), prefix = o.Get("prefix");
  if (!family.IsNumber() || !bytes.IsBuffer()) return false;
  int f = family.As<Napi::Number>().Int32Value();
  Napi::Buffer<unsigned char> b = bytes.As<Napi::Buffer<unsigned char>>();
  size_t len = f == 6 ? 16 : 4;
  if ((f != 4 && f != 6) || b.Length() != len) return false;
  out->family = f == 6 ? AF_INET6 : AF_INET;
  std::memcpy(out->bytes, b.Data(), len);
  out->prefix = prefix.IsNumber() ? prefix.As<Napi::Number>().Int32Value() : 0;
  return true;
}

bool ParseAddresses(const Napi::Object& cfg, const char* key, std::vector<IpAddress>* out) {
  Napi::Value v = cfg.Get(key);
  if (!v.IsArray()) return false;
  Napi::Array arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    IpAddress a;
    if (!ParseAddress(arr.Get(i), &a)) return false;
    out->push_back(a);
  }
  return true;
}

// vethCreate({ hostName, sandboxName, loopback, hostAddresses, sandboxAddresses, gateways })
//   -> { netnsFd }: a new network namespace (held by the returned fd) holding `sandboxName`,
// the peer of `hostName` in the calling thread's namespace; both up with their addresses,
// default routes inside via `gateways`. On failure nothing is left: the pair is deleted
// and the namespace, held only by our fd, goes with it.
Napi::Value VethCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) {
    Napi::TypeError::New(env, "vethCreate(config): bad arguments").ThrowAsJavaScriptException();
    return env.Null();
  }
  Napi::Object cfg = info[0].As<Napi::Object>();
  std::string host_name = StringArg(cfg.Get("hostName"));
  std::string sandbox_name = StringArg(cfg.Get("sandboxName"));
  std::vector<IpAddress> host_addresses, sandbox_addresses, gateways;
  if (!ParseAddresses(cfg, "hostAddresses", &host_addresses) || !ParseAddresses(cfg, "sandboxAddresses", &sandbox_addresses) ||
      !ParseAddresses(cfg, "gateways", &gateways)) {
    Napi::TypeError::New(env, "vethCreate(config): malformed addresses").ThrowAsJavaScriptException();
    return env.Null();
  }

  NetnsJob job;
  Napi::Value loopback = cfg.Get("loopback");  // empty if the environment is going away
  job.loopback_up = loopback.IsBoolean() && loopback.As<Napi::Boolean>().Value();
  job.want_fds = true;
  RunInNewNetns(&job);
  UniqueFd ns(job.ns_fd);
  Rtnl inside;
  inside.Adopt(UniqueFd(job.nl_fd));
  if (job.err != 0) return Error(env, "veth-netns", job.syscall, job.err);

  Rtnl host;
  if (int err = host.Open()) return Error(env, "veth-create", "socket", err);
  if (int err = host.CreateVeth(host_name, sandbox_name, ns.get())) {
    return Error(env, "veth-create", "RTM_NEWLINK", err, host.kernel_message());
  }
  // From here on the pair exists: a failure deletes it (deleting one end deletes both).
  auto undo = [&](const char* step, const char* call, int err, const std::string& message, int index = -1) {
    host.DeleteLink(host_name);
    return Error(env, step, call, err, message, index);
  };
  int host_index = 0, sandbox_index = 0;
  if (int err = host.LinkIndex(host_name, &host_index)) return undo("veth-create", "RTM_GETLINK", err, host.kernel_message());
  for (size_t i = 0; i < host_addresses.size(); i++) {
    if (int err = host.AddAddress(host_index, host_addresses[i])) {
      return undo("veth-host-address", "RTM_NEWADDR", err, host.kernel_message(), static_cast<int>(i));
    }
  }
  if (int err = host.SetLinkUp(host_index)) return undo("veth-host-up", "RTM_NEWLINK", err, host.kernel_message());
  if (int err = inside.LinkIndex(sandbox_name, &sandbox_index)) return undo("veth-create", "RTM_GETLINK", err, inside.kernel_message());
  if (int err = inside.SetLinkUp(sandbox_index)) return undo("veth-sandbox-up", "RTM_NEWLINK", err, inside.kernel_message());
  for (size_t i = 0; i < sandbox_addresses.size(); i++) {
    if (int err = inside.AddAddress(sandbox_index, sandbox_addresses[i])) {
      return undo("veth-sandbox-address", "RTM_NEWADDR", err, inside.kernel_message(), static_cast<int>(i));
    }
  }
  for (size_t i = 0; i < gateways.size(); i++) {
    if (int err = inside.AddDefaultRoute(gateways[i], sandbox_index)) {
      return undo("veth-route", "RTM_NEWROUTE", err, inside.kernel_message(), static_cast<int>(i));
    }
  }
  int high = DupHigh(&ns);
  if (high < 0) return undo("veth-netns", "fcntl", -high, "");
  // Closed with closeFd; if the environment goes first, closing it ends the namespace and
  // with it the veth pair.
  TrackFd(env, high);
  Napi::Object result = Napi::Object::New(env);
  result.Set("netnsFd", high);
  return result;
}

// linkDelete(name): deletes a link of the calling thread's network namespace.
Napi::Value LinkDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Rtnl rtnl;
  if (int err = rtnl.Open()) return Error(env, "link-delete", "socket", err);
  if (int err = rtnl.DeleteLink(StringArg(info[0]))) return Error(env, "link-delete", "RTM_DELLINK", err, rtnl.kernel_message());
  return env.Null();
}

// addressList() -> [{ family: 4|6, address, prefix, ifname }]: the addresses of the calling
// thread's network namespace, of interfaces up or down.
Napi::Value AddressList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Rtnl rtnl;
  std::vector<InterfaceAddress> addresses;
  if (int err = rtnl.Open()) return Error(env, "address-list", "socket", err);
  if (int err = rtnl.ListAddresses(&addresses)) return Error(env, "address-list", "RTM_GETADDR", err, rtnl.kernel_message());
  Napi::Array list = Napi::Array::New(env, addresses.size());
  for (size_t i = 0; i < addresses.size(); i++) {
    const InterfaceAddress& a = addresses[i];
    char name[IF_NAMESIZE] = {};
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("family", a.address.family == AF_INET6 ? 6 : 4);
    entry.Set("address", Napi::Buffer<unsigned char>::Copy(env, a.address.bytes, a.address.family == AF_INET6 ? 16 : 4));
    entry.Set("prefix", a.address.prefix);
    entry.Set("ifname", ::if_indextoname(static_cast<unsigned>(a.ifindex), name) ? name : "");
    list.Set(static_cast<uint32_t>(i), entry);
  }
  return list;
}

}  // namespace

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsCreate", Napi::Function::New(env, NetnsCreate, "netnsCreate"));
  exports.Set("netnsDelete", Napi::Function::New(env, NetnsDelete, "netnsDelete"));
  exports.Set("nsOpen", Napi::Function::New(env, NsOpen, "nsOpen"));
  exports.Set("vethCreate", Napi::Function::New(env, VethCreate, "vethCreate"));
  exports.Set("linkDelete", Napi::Function::New(env, LinkDelete, "linkDelete"));
  exports.Set("addressList", Napi::Function::New(env, AddressList, "addressList"));
}

}  // namespace nsjail
