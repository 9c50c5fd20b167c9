// Spawner threads (see spawner.h): one queue, a few threads that take from it.
#include "spawner.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>

namespace nsjail {
namespace {

thread_local bool tls_signals_blocked = false;

struct Spawner {
  std::mutex mutex;
  std::condition_variable work;      // a task was queued
  std::condition_variable finished;  // a task finished (CancelSpawnerTasks waits on it)
  std::deque<SpawnerTask*> queue;
  std::vector<const void*> running;  // the owner of each task being run
  unsigned threads = 0;              // started
  unsigned idle = 0;                 // waiting for a task
};

// Never destroyed: its threads outlive every static destructor.
Spawner& TheSpawner() {
  static Spawner* spawner = new Spawner();
  return *spawner;
}

unsigned MaxThreads() {
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<unsigned>(std::clamp(cpus / 2, 1L, 8L));
}

void* ThreadMain(void*) {
  sigset_t all;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, nullptr);  // glibc keeps its own two signals open
  tls_signals_blocked = true;

  Spawner& s = TheSpawner();
  std::unique_lock<std::mutex> lock(s.mutex);
  for (;;) {
    s.idle++;
    s.work.wait(lock, [&s] { return !s.queue.empty(); });
    s.idle--;
    SpawnerTask* task = s.queue.front();
    s.queue.pop_front();
    const void* owner = task->owner();
    s.running.push_back(owner);
    lock.unlock();
    task->Run();  // hands the task back: it may be gone from here on
    lock.lock();
    s.running.erase(std::find(s.running.begin(), s.running.end(), owner));
    s.finished.notify_all();
  }
}

bool StartThread() {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t id;
  int err = ::pthread_create(&id, &attr, ThreadMain, nullptr);
  pthread_attr_destroy(&attr);
  if (err != 0) return false;
  ::pthread_setname_np(id, "nsjail-spawner");
  return true;
}

}  // namespace

void SubmitToSpawner(SpawnerTask* task) {
  Spawner& s = TheSpawner();
  std::unique_lock<std::mutex> lock(s.mutex);
  s.queue.push_back(task);
  if (s.idle < s.queue.size() && s.threads < MaxThreads()) {
    s.threads++;
    lock.unlock();
    bool started = StartThread();
    lock.lock();
    if (!started) {
      s.threads--;
      auto queued = std::find(s.queue.begin(), s.queue.end(), task);
      if (s.threads == 0 && queued != s.queue.end()) {
        // No thread to run it, now or later: run it here.
        s.queue.erase(queued);
        lock.unlock();
        task->Run();
        return;
      }
    }
  }
  s.work.notify_one();
}

std::vector<SpawnerTask*> CancelSpawnerTasks(const void* owner) {
  Spawner& s = TheSpawner();
  std::unique_lock<std::mutex> lock(s.mutex);
  std::vector<SpawnerTask*> cancelled;
  for (auto it = s.queue.begin(); it != s.queue.end();) {
    if ((*it)->owner() == owner) {
      cancelled.push_back(*it);
      it = s.queue.erase(it);
    } else {
      ++it;
    }
  }
  s.finished.wait(lock, [&] { return std::find(s.running.begin(), s.running.end(), owner) == s.running.end(); });
  return cancelled;
}

bool ThreadSignalsBlocked() { return tls_signals_blocked; }

}  // namespace nsjail
