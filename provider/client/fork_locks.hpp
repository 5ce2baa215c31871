// Locks a fork() must not split. A child has only the thread that forked: a lock another thread
// held at that moment would stay held in the child for ever, and its first keyserver call would
// wait on it with no deadline. The fork handlers (client.cpp) take every registered lock before
// fork() and release it after, in the parent and in the child, so the state each guards is whole
// and free in both.
#pragma once

#include <mutex>

namespace keyless::client {

// The order the code nests these locks in, which is the order the fork handlers take them
// (a Client's lock is held while the I/O core registry's is taken, which they take after these).
enum class ForkLockRank { Client = 0 };

void register_fork_lock(std::mutex& lock, ForkLockRank rank);
void unregister_fork_lock(std::mutex& lock); // before the lock's owner takes it to die

// The fork handlers' halves: lock every registered lock in rank order; unlock them all.
void lock_for_fork();
void unlock_after_fork();

} // namespace keyless::client
