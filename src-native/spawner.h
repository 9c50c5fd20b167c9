// Spawner threads: native threads that clone sandboxes for spawnAsync, off the JavaScript
// thread and off libuv's thread pool.
//
// Why not the pool: a spawn holds its thread for the whole set-up (about a millisecond), so
// spawns in flight would hold up the application's file system and DNS work behind them;
// and on a small machine several clones at once (each a stretch of kernel work that, on a
// kernel without preemption, nothing interrupts) leave the event loop waiting for a CPU:
// one spawner thread on 2 cores halved the loop's lag p99 against the pool's 4 threads, for
// ~5% less throughput. There are max(1, min(8, CPUs / 2)) threads, started on demand; they
// never exit, since a sandbox's PR_SET_PDEATHSIG belongs to the thread that cloned it. Every
// signal glibc lets a thread block is blocked on them for good.
//
// A new thread starts in the namespaces of the thread that creates it, and a Node thread may
// have left the process's own (a worker's unshare(['net']) or withNetns moves that thread
// only). So spawner threads are never created by the thread that submits work: a factory
// thread, started when the addon is first loaded in the process (before this library's raw
// layer can have moved the loading thread anywhere), creates them, and does nothing else. setns back to saved namespaces would not do: user
// and mount namespaces cannot be re-entered by a thread of a multithreaded process.
#pragma once

#include <vector>

namespace nsjail {

// One job for a spawner thread.
class SpawnerTask {
 public:
  explicit SpawnerTask(const void* owner) : owner_(owner) {}
  virtual ~SpawnerTask() = default;
  SpawnerTask(const SpawnerTask&) = delete;
  SpawnerTask& operator=(const SpawnerTask&) = delete;

  // On a spawner thread: the work, and handing the task back to its owner, after which the
  // spawner no longer touches it.
  virtual void Run() = 0;

  // Whose task this is (CancelSpawnerTasks).
  const void* owner() const { return owner_; }

 private:
  const void* owner_;
};

// Starts the factory thread: the first call in the process tries, later calls do nothing.
void StartSpawnerFactory();

// Queues a task for a spawner thread. Without a factory thread (it could not be started),
// runs it on the calling thread; if the factory cannot start any spawner thread, it runs the
// queue itself.
void SubmitToSpawner(SpawnerTask* task);

// Takes back the owner's tasks that no thread has started (the caller deletes them) and
// waits until none of its tasks is running any more.
std::vector<SpawnerTask*> CancelSpawnerTasks(const void* owner);

}  // namespace nsjail
