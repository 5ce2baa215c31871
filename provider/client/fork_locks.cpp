#include "fork_locks.hpp"

#include <map>
#include <memory>

namespace keyless::client {

namespace {

// Every registered lock, process-wide: pthread_atfork handlers take no argument. Immortal for
// the reason the I/O core registry is (client.cpp): owners deregister from inside
// OPENSSL_cleanup(), after this library's static destructors have run.
struct ForkLocks {
    std::mutex guard; // taken first by the fork handlers, so registration waits for a fork
    std::multimap<ForkLockRank, std::mutex*> locks;
};

ForkLocks& fork_locks() {
    static ForkLocks* immortal = std::make_unique<ForkLocks>().release();
    return *immortal;
}

} // namespace

void register_fork_lock(std::mutex& lock, ForkLockRank rank) {
    std::lock_guard guard(fork_locks().guard);
    fork_locks().locks.emplace(rank, &lock);
}

void unregister_fork_lock(std::mutex& lock) {
    std::lock_guard guard(fork_locks().guard);
    auto& locks = fork_locks().locks;
    for (auto it = locks.begin(); it != locks.end(); ++it)
        if (it->second == &lock) {
            locks.erase(it);
            return;
        }
}

void lock_for_fork() {
    fork_locks().guard.lock();
    for (auto& [rank, lock] : fork_locks().locks)
        lock->lock();
}

void unlock_after_fork() {
    auto& locks = fork_locks().locks;
    for (auto it = locks.rbegin(); it != locks.rend(); ++it)
        it->second->unlock();
    fork_locks().guard.unlock();
}

} // namespace keyless::client
