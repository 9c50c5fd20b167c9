// Spawner threads (see spawner.h): one queue, a few threads that take from it, and the
// factory thread that creates them.
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

struct Spawner {
  std::mutex mutex;
  std::condition_variable work;      // a task was queued
  std::condition_variable finished;  // a task finished (CancelSpawnerTasks waits on it)
  std::condition_variable grow;      // the factory is asked for one more thread
  std::deque<SpawnerTask*> queue;
  std::vector<const void*> running;  // the owner of each task being run
  unsigned threads = 0;              // started, or asked of the factory
  unsigned idle = 0;                 // waiting for a task
  unsigned requested = 0;            // threads asked of the factory and not yet created
  bool factory = false;              // the factory thread is running
  bool factory_tried = false;        // only from the first loading thread: a later one may be anywhere
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

void BlockSignals() {
  sigset_t all;
  sigfillset(&all);
  // glibc keeps its own two (SIGCANCEL, SIGSETXID) open: a thread that blocked SIGSETXID for
  // good would hang every setuid() of the process. clone.cc blocks them around the clone.
  ::pthread_sigmask(SIG_SETMASK, &all, nullptr);
}

// Runs the task at the front of the queue (the lock held on entry and on return).
void RunFront(Spawner& s, std::unique_lock<std::mutex>& lock) {
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

void* SpawnerMain(void*) {
  BlockSignals();
  Spawner& s = TheSpawner();
  std::unique_lock<std::mutex> lock(s.mutex);
  for (;;) {
    s.idle++;
    s.work.wait(lock, [&s] { return !s.queue.empty(); });
    s.idle--;
    RunFront(s, lock);
  }
}

bool StartThread(void* (*main)(void*), const char* name) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t id;
  int err = ::pthread_create(&id, &attr, main, nullptr);
  pthread_attr_destroy(&attr);
  if (err != 0) return false;
  ::pthread_setname_np(id, name);
  return true;
}

// Creates spawner threads on request; it does nothing else, so it stays in the namespaces
// the process had when the addon was loaded.
void* FactoryMain(void*) {
  BlockSignals();
  Spawner& s = TheSpawner();
  std::unique_lock<std::mutex> lock(s.mutex);
  for (;;) {
    s.grow.wait(lock, [&s] { return s.requested > 0; });
    s.requested--;
    lock.unlock();
    bool started = StartThread(SpawnerMain, "nsjail-spawner");
    lock.lock();
    if (!started) {
      s.threads--;
      // No spawner thread at all (the process is out of threads): the factory, which is in
      // the same clean namespaces, runs what is queued rather than leave it waiting.
      while (s.threads == 0 && !s.queue.empty()) RunFront(s, lock);
    }
  }
}

}  // namespace

void StartSpawnerFactory() {
  Spawner& s = TheSpawner();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.factory_tried) return;
  s.factory_tried = true;
  s.factory = StartThread(FactoryMain, "nsjail-spawnerf");
}

void SubmitToSpawner(SpawnerTask* task) {
  Spawner& s = TheSpawner();
  std::unique_lock<std::mutex> lock(s.mutex);
  if (!s.factory) {
    // No factory (its thread could not be created): run it on the calling thread, as
    // spawnIsolated would.
    lock.unlock();
    task->Run();
    return;
  }
  s.queue.push_back(task);
  if (s.idle + s.requested < s.queue.size() && s.threads < MaxThreads()) {
    s.threads++;
    s.requested++;
    s.grow.notify_one();
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

}  // namespace nsjail
