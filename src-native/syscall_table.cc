// The system call table seccomp policies are compiled against (lib/seccomp.ts).
//
// Numbers come from the target's kernel headers when the addon is compiled, so a prebuilt
// arm64 addon carries arm64 numbers and nothing is looked up at run time. The list of names
// is syscall_names.inc (scripts/gen-syscall-names.js); a name this architecture lacks has -1.
#include <linux/audit.h>
#include <sys/syscall.h>

#include "addon.h"

namespace nsjail {
namespace {

struct SyscallEntry {
  const char* name;
  long nr;
};

const SyscallEntry kSyscalls[] = {
#include "syscall_names.inc"
};

#if defined(__x86_64__)
constexpr const char* kArchName = "x86_64";
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
constexpr uint32_t kX32Bit = 0x40000000;  // __X32_SYSCALL_BIT: x32 calls enter through the x86_64 path
#elif defined(__aarch64__)
constexpr const char* kArchName = "aarch64";
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
constexpr uint32_t kX32Bit = 0;
#else
constexpr const char* kArchName = "unsupported";
constexpr uint32_t kAuditArch = 0;  // lib/seccomp.ts refuses to compile for it
constexpr uint32_t kX32Bit = 0;
#endif

}  // namespace

void InitSyscallTable(Napi::Env env, Napi::Object exports) {
  Napi::Object syscalls = Napi::Object::New(env);
  for (const auto& entry : kSyscalls) syscalls.Set(entry.name, static_cast<double>(entry.nr));
  Napi::Object table = Napi::Object::New(env);
  table.Set("arch", kArchName);
  table.Set("auditArch", static_cast<double>(kAuditArch));
  table.Set("x32Bit", static_cast<double>(kX32Bit));
  table.Set("syscalls", syscalls);
  exports.Set("syscallTable", table);
}

}  // namespace nsjail
