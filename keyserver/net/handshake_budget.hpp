// The budget for connections still in their TLS handshake, which anyone on the network can open
// without a certificate. It must never let them lock out edges: a source address may hold only
// `max_per_source` handshakes, and when the whole budget is full the oldest handshake makes room
// for the newcomer (so connections held open only delay themselves). Pure bookkeeping, no
// sockets: the server keeps a handle per connection and closes the ones this says to evict.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace keyless::keyserver {

template <typename Handle> class HandshakeBudget {
  public:
    using Ticket = uint64_t; // increasing: a smaller ticket is an older handshake

    HandshakeBudget(size_t max_total, size_t max_per_source)
        : max_total_(max_total), max_per_source_(max_per_source) {}

    // Admits a handshake from `source`, appending to `evicted` the oldest ones that make room;
    // nullopt (nothing evicted) when `source` already holds its share.
    std::optional<Ticket> admit(const std::string& source, Handle handle,
                                std::vector<Handle>& evicted) {
        std::lock_guard lock(mutex_);
        auto mine = per_source_.find(source);
        if (mine != per_source_.end() && mine->second >= max_per_source_) return std::nullopt;
        while (!entries_.empty() && entries_.size() >= max_total_) {
            evicted.push_back(entries_.begin()->second.handle);
            forget(entries_.begin());
        }
        ++per_source_[source];
        Ticket t = next_++;
        entries_.emplace(t, Entry{source, std::move(handle)});
        return t;
    }

    // The handshake ended (done, failed or evicted); a ticket already forgotten is ignored.
    void leave(Ticket ticket) {
        std::lock_guard lock(mutex_);
        auto it = entries_.find(ticket);
        if (it != entries_.end()) forget(it);
    }

    // Every handshake in the budget (to close them all when draining).
    std::vector<Handle> handles() const {
        std::lock_guard lock(mutex_);
        std::vector<Handle> out;
        for (const auto& [ticket, entry] : entries_)
            out.push_back(entry.handle);
        return out;
    }

    size_t size() const {
        std::lock_guard lock(mutex_);
        return entries_.size();
    }

  private:
    struct Entry {
        std::string source;
        Handle handle;
    };

    void forget(typename std::map<Ticket, Entry>::iterator it) {
        auto source = per_source_.find(it->second.source);
        if (source != per_source_.end() && --source->second == 0) per_source_.erase(source);
        entries_.erase(it);
    }

    mutable std::mutex mutex_; // admitted on the acceptor, left on each connection's strand
    const size_t max_total_;
    const size_t max_per_source_;
    Ticket next_ = 1;
    std::map<Ticket, Entry> entries_; // oldest first
    std::map<std::string, size_t> per_source_;
};

} // namespace keyless::keyserver
