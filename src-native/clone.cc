// Starting the child: clone3 on a dedicated stack, with a fallback to clone(2).
//
// clone3 has no glibc wrapper, and a raw syscall cannot return into C++ on a new stack, so a
// few lines of assembly switch to the child function. The stack is mmap'd once per thread
// with a guard page below it, and reused: with CLONE_VFORK the child is done with it (exec'd
// or exited) by the time clone returns; without CLONE_VM the child has its own copy.
#include "clone.h"
#include "hostids.h"
#include "spawner.h"

#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#if defined(__SANITIZE_ADDRESS__)
#define NSJAIL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NSJAIL_ASAN 1
#endif
#endif
#ifdef NSJAIL_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

namespace nsjail {
namespace {

// Enough for the child's straight-line steps and their fixed buffers (getdents64 4 KiB).
constexpr size_t kStackSize = 256 * 1024;

// Layout of struct clone_args (v0, 64 bytes; CLONE_ARGS_SIZE_VER0), spelled out so that old
// kernel headers still build.
struct CloneArgs {
  uint64_t flags;
  uint64_t pidfd;
  uint64_t child_tid;
  uint64_t parent_tid;
  uint64_t exit_signal;
  uint64_t stack;
  uint64_t stack_size;
  uint64_t tls;
};

struct ChildStack {
  void* base = nullptr;  // guard page first, then the usable stack
  size_t size = 0;
  ~ChildStack() {
    if (base) ::munmap(base, size);
  }
};

// Per thread: Node worker threads may spawn concurrently with the main thread.
thread_local ChildStack tls_stack;

char* StackLow(size_t* usable) {
  if (!tls_stack.base) {
    size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    size_t total = kStackSize + page;
    void* mem = ::mmap(nullptr, total, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    if (::mprotect(mem, page, PROT_NONE) < 0) {  // the guard page: overflow faults, not corrupts
      ::munmap(mem, total);
      return nullptr;
    }
    tls_stack.base = mem;
    tls_stack.size = total;
  }
  size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  *usable = tls_stack.size - page;
  return static_cast<char*>(tls_stack.base) + page;
}

// clone3 and run fn(arg) in the child on the new stack; returns the child's pid (or
// -errno) in the parent. The child never returns from here: it execs or exits.
long Clone3Trampoline(CloneArgs* args, int (*fn)(void*) noexcept, void* arg) {
#if defined(__x86_64__)
  long ret;
  register void* r12 __asm__("r12") = reinterpret_cast<void*>(fn);
  register void* r13 __asm__("r13") = arg;
  __asm__ volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      // Child: rsp is the top of the new stack (16-byte aligned), no frame to return to.
      "xor %%ebp, %%ebp\n\t"
      "mov %%r13, %%rdi\n\t"
      "call *%%r12\n\t"
      "mov %%eax, %%edi\n\t"
      "mov %[exit_nr], %%eax\n\t"
      "syscall\n\t"
      "hlt\n\t"
      "1:\n\t"
      : "=a"(ret)
      : "0"(static_cast<long>(SYS_clone3)), "D"(args), "S"(sizeof(CloneArgs)), "r"(r12), "r"(r13),
        [exit_nr] "i"(SYS_exit)
      : "rcx", "r11", "memory", "cc");
  return ret;
#elif defined(__aarch64__)
  register long x0 __asm__("x0") = reinterpret_cast<long>(args);
  register long x1 __asm__("x1") = static_cast<long>(sizeof(CloneArgs));
  register long x8 __asm__("x8") = SYS_clone3;
  register void* x9 __asm__("x9") = reinterpret_cast<void*>(fn);
  register void* x10 __asm__("x10") = arg;
  __asm__ volatile(
      "svc #0\n\t"
      "cbnz x0, 1f\n\t"
      // Child: sp is the top of the new stack (16-byte aligned), no frame to return to.
      "mov x29, xzr\n\t"
      "mov x30, xzr\n\t"
      "mov x0, x10\n\t"
      "blr x9\n\t"
      "mov x8, %[exit_nr]\n\t"
      "svc #0\n\t"
      "brk #0\n\t"
      "1:\n\t"
      : "+r"(x0)
      : "r"(x1), "r"(x8), "r"(x9), "r"(x10), [exit_nr] "i"(SYS_exit)
      : "memory", "cc");
  return x0;
#else
  (void)args;
  (void)fn;
  (void)arg;
  return -ENOSYS;
#endif
}

// Learned once per process: a kernel without clone3 (< 5.3) or without
// CLONE_CLEAR_SIGHAND (< 5.5) keeps answering the same way.
std::atomic<bool> g_no_clone3{false};
std::atomic<bool> g_no_clear_sighand{false};

CloneResult TryClone3(const CloneRequest& req, char* stack_low, size_t stack_size) {
  for (;;) {
    int pidfd = -1;
    CloneArgs args;
    std::memset(&args, 0, sizeof args);
    args.flags = req.flags | CLONE_PIDFD;
    if (!g_no_clear_sighand.load(std::memory_order_relaxed)) args.flags |= CLONE_CLEAR_SIGHAND;
    args.pidfd = reinterpret_cast<uintptr_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    args.stack = reinterpret_cast<uintptr_t>(stack_low);
    args.stack_size = stack_size;
    long ret = Clone3Trampoline(&args, req.fn, req.arg);
    if (ret > 0) return {static_cast<pid_t>(ret), pidfd, 0, "clone3"};
    int err = static_cast<int>(-ret);
    if (err == EINVAL && (args.flags & CLONE_CLEAR_SIGHAND)) {
      g_no_clear_sighand.store(true, std::memory_order_relaxed);
      continue;  // the child resets its handlers itself anyway
    }
    return {-1, -1, err, "clone3"};
  }
}

CloneResult TryLegacyClone(const CloneRequest& req, char* stack_low, size_t stack_size) {
  int pidfd = -1;
  // CLONE_PIDFD (Linux 5.2) returns the pidfd through the parent_tid argument.
  int flags = static_cast<int>(req.flags) | CLONE_PIDFD | SIGCHLD;
  int (*fn)(void*) = req.fn;
  pid_t pid = ::clone(fn, stack_low + stack_size, flags, req.arg, &pidfd, nullptr, nullptr);
  if (pid > 0) return {pid, pidfd, 0, "clone"};
  return {-1, -1, errno, "clone"};
}

// Blocks every signal on this thread for the lifetime of the guard: a handler must never run
// in a child that shares the parent's memory before it has reset its dispositions. Through
// the raw system call, as glibc's posix_spawn does: pthread_sigmask leaves glibc's own
// SIGCANCEL (32) and SIGSETXID (33) open, and their handlers would run in the child on the
// parent's stack and thread state (the legacy clone path has no CLONE_CLEAR_SIGHAND). Spawner
// threads keep those two open too (blocking SIGSETXID for good would hang setuid()), so the
// guard is needed on every thread; a setuid() meanwhile only waits for this clone.
class SignalBlock {
 public:
  SignalBlock() {
    uint64_t all = ~0ULL;
    active_ = ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &saved_, sizeof saved_) == 0;
  }
  ~SignalBlock() {
    if (active_) ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &saved_, nullptr, sizeof saved_);
  }
  SignalBlock(const SignalBlock&) = delete;
  SignalBlock& operator=(const SignalBlock&) = delete;

 private:
  bool active_;
  uint64_t saved_ = 0;  // the kernel's sigset: 64 signals on x86_64 and arm64
};

}  // namespace

#ifdef NSJAIL_ASAN
namespace {

// AddressSanitizer keeps one record of the stack per thread, and a CLONE_VM child without
// its own TLS shares the parent thread's. The child tells ASan (fiber API) that it now runs
// on its own stack, so that __asan_handle_no_return (called before every noreturn call:
// Fail, _exit) cleans that stack instead of declining with a warning to the sandbox's
// stderr; the parent puts its own stack back once clone has returned. Sanitizer builds only.
// Not marked no_sanitize: with these two, the child's code runs instrumented as it is.
struct AsanChildStart {
  int (*fn)(void*) noexcept;
  void* arg;
  const void* low;
  size_t size;
  const void* parent_bottom;  // written by a CLONE_VM child: the parent thread's stack
  size_t parent_size;
  bool switched;
};

int AsanChildEntry(void* raw) noexcept {
  AsanChildStart* start = static_cast<AsanChildStart*>(raw);
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, start->low, start->size);
  __sanitizer_finish_switch_fiber(fake_stack, &start->parent_bottom, &start->parent_size);
  start->switched = true;
  return start->fn(start->arg);
}

// In the parent after clone: with CLONE_VM|CLONE_VFORK the child has exec'd or exited.
void AsanParentResume(const AsanChildStart& start, unsigned long long flags) {
  if (!(flags & CLONE_VM)) return;  // the child wrote its own copy of memory
  // Its frames never returned, so the shadow of its stack still holds their redzones and
  // out-of-scope marks, and instrumented code assumes a frame starts on clean shadow
  // (returns and longjmp clean it): the next child on this stack got a false
  // stack-use-after-scope, and so did V8 once a worker thread had exited, its stack been
  // unmapped and the addresses reused for V8's heap. Clean it whenever no child runs on it.
  ASAN_UNPOISON_MEMORY_REGION(start.low, start.size);
  if (!start.switched) return;
  // The child switched ASan's record of this thread's stack: switch it back.
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, start.parent_bottom, start.parent_size);
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
}

}  // namespace
#endif

CloneResult CloneChild(const CloneRequest& request) {
  size_t stack_size = 0;
  char* stack_low = StackLow(&stack_size);
  if (!stack_low) return {-1, -1, errno, "mmap"};
#ifdef NSJAIL_ASAN
  AsanChildStart asan_start{request.fn, request.arg, stack_low, stack_size, nullptr, 0, false};
  CloneRequest req = request;
  req.fn = AsanChildEntry;
  req.arg = &asan_start;
  struct Resume {
    const AsanChildStart& start;
    unsigned long long flags;
    ~Resume() { AsanParentResume(start, flags); }
  } resume{asan_start, request.flags};
#else
  const CloneRequest& req = request;
#endif

  SignalBlock blocked;
  // The sandbox's user namespace is owned by its host id (lib/hostids.ts), not by us.
  CloneAsHostId as_host_id(req.host_id);
  if (as_host_id.err()) return {-1, -1, as_host_id.err(), as_host_id.syscall()};
  bool use_clone3 = req.engine == CloneEngine::kClone3 ||
                    (req.engine == CloneEngine::kAuto && !g_no_clone3.load(std::memory_order_relaxed));
  if (use_clone3) {
    CloneResult r = TryClone3(req, stack_low, stack_size);
    if (r.pid > 0 || r.err != ENOSYS || req.engine == CloneEngine::kClone3) return r;
    g_no_clone3.store(true, std::memory_order_relaxed);
  }
  return TryLegacyClone(req, stack_low, stack_size);
}

}  // namespace nsjail
