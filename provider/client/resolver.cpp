#include "resolver.hpp"

#include <signal.h>

#include <algorithm>
#include <system_error>
#include <thread>

namespace keyless::client {

Resolver::Resolver(Lookup lookup, std::function<void()> wake)
    : shared_(std::make_shared<Shared>()) {
    shared_->lookup = std::move(lookup);
    shared_->wake = std::move(wake);
}

void Resolver::request(const std::string& host) {
    std::lock_guard lock(shared_->mutex);
    if (shared_->closed || shared_->running.count(host) ||
        std::find(shared_->queued.begin(), shared_->queued.end(), host) != shared_->queued.end())
        return;
    if (shared_->running.size() >= kMaxLookups)
        shared_->queued.push_back(host);
    else
        start(shared_, host);
}

// Under shared->mutex.
void Resolver::start(const std::shared_ptr<Shared>& shared, const std::string& host) {
    shared->running.insert(host);
    // The lookup thread takes no signal: the application's handlers run on its own threads.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
        std::thread([shared, host] {
            DnsAnswer answer;
            try {
                answer = shared->lookup(host);
            } catch (const std::exception& e) {
                answer = DnsAnswer{{}, std::string("lookup failed: ") + e.what(), false};
            } catch (...) {
                answer = DnsAnswer{{}, "lookup failed", false};
            }
            std::lock_guard lock(shared->mutex);
            shared->running.erase(host);
            if (shared->closed) return;
            shared->answers.emplace_back(host, std::move(answer));
            if (!shared->queued.empty()) {
                std::string next = std::move(shared->queued.front());
                shared->queued.pop_front();
                start(shared, next);
            }
            shared->wake();
        }).detach();
    } catch (const std::system_error& e) {
        shared->running.erase(host);
        shared->answers.emplace_back(
            host, DnsAnswer{{}, std::string("cannot start a lookup thread: ") + e.what(), false});
        // The owner sees the answer on its next turn (a request comes from it or its lock).
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

std::vector<std::pair<std::string, DnsAnswer>> Resolver::take_answers() {
    std::lock_guard lock(shared_->mutex);
    return std::exchange(shared_->answers, {});
}

void Resolver::close() {
    std::lock_guard lock(shared_->mutex);
    shared_->closed = true;
    shared_->queued.clear();
}

} // namespace keyless::client
