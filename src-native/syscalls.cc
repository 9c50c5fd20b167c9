// The raw layer (nsjail-node/syscalls): unshare, setns and chroot on the calling thread.
//
// Each returns 0 or an errno; lib/syscalls.ts explains what the call did to the process and
// its threads and raises the error.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstring>

#include "addon.h"
#include "unique_fd.h"

namespace nsjail {
namespace {

Napi::Value Unshare(const Napi::CallbackInfo& info) {
  int flags = info[0].As<Napi::Number>().Int32Value();
  return Napi::Number::New(info.Env(), ::unshare(flags) < 0 ? errno : 0);
}

// setns(path or fd, nstype)
Napi::Value Setns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int nstype = info[1].As<Napi::Number>().Int32Value();
  if (info[0].IsNumber()) {
    int fd = info[0].As<Napi::Number>().Int32Value();
    return Napi::Number::New(env, ::setns(fd, nstype) < 0 ? errno : 0);
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Napi::Number::New(env, errno);
  return Napi::Number::New(env, ::setns(fd.get(), nstype) < 0 ? errno : 0);
}

Napi::Value Chroot(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (::chroot(path.c_str()) < 0) return Napi::Number::New(info.Env(), errno);
  return Napi::Number::New(info.Env(), ::chdir("/") < 0 ? errno : 0);
}

// The C library's text for an errno: libuv's table (util.getSystemErrorMap) lacks some,
// such as ENOEXEC.
Napi::Value StrError(const Napi::CallbackInfo& info) {
  char buf[256];
  const char* text = ::strerror_r(info[0].As<Napi::Number>().Int32Value(), buf, sizeof buf);
  return Napi::String::New(info.Env(), text);
}

// The errno's symbolic name (ENOENT); Node's os.constants.errno lacks many (EUSERS, ENOKEY).
Napi::Value ErrnoName(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* name = ::strerrorname_np(info[0].As<Napi::Number>().Int32Value());
  if (name) return Napi::String::New(info.Env(), name);
#endif
  return info.Env().Undefined();
}

// prctl(PR_SET_PDEATHSIG, SIGKILL) for this process, then whether the parent is still the
// one it was (`expected_ppid`): one that died before the arming sent nothing. 0 or an errno
// (ESRCH: the parent is already gone). For the command line's --die-with-parent.
Napi::Value DieWithParent(const Napi::CallbackInfo& info) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) return Napi::Number::New(info.Env(), errno);
  int expected = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
  return Napi::Number::New(info.Env(), expected >= 0 && ::getppid() != expected ? ESRCH : 0);
}

}  // namespace

void InitSyscalls(Napi::Env env, Napi::Object exports) {
  exports.Set("dieWithParent", Napi::Function::New(env, DieWithParent, "dieWithParent"));
  exports.Set("unshare", Napi::Function::New(env, Unshare, "unshare"));
  exports.Set("setns", Napi::Function::New(env, Setns, "setns"));
  exports.Set("chroot", Napi::Function::New(env, Chroot, "chroot"));
  exports.Set("strerror", Napi::Function::New(env, StrError, "strerror"));
  exports.Set("errnoName", Napi::Function::New(env, ErrnoName, "errnoName"));
}

}  // namespace nsjail
