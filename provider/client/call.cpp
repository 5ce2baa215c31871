#include "call.hpp"

#include <unistd.h>

namespace keyless::client {

void Call::complete(std::optional<protocol::Operation> r, Failure f, std::string m) {
    {
        std::lock_guard lock(mutex_);
        if (done_) return;
        response = std::move(r);
        failure = f;
        message = std::move(m);
        completed_at = std::chrono::steady_clock::now();
        done_ = true;
    }
    cv_.notify_all();
    if (notify_fd >= 0) {
        uint64_t one = 1;
        ssize_t ignored = ::write(notify_fd, &one, sizeof one);
        (void)ignored;
        ::close(notify_fd);
        notify_fd = -1;
    }
}

Call::~Call() {
    if (notify_fd >= 0) ::close(notify_fd);
}

void Call::wait() {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_until(lock, deadline + std::chrono::seconds(2), [&] { return done_; })) {
        done_ = true;
        failure = Failure::Timeout;
        message = "no reply from the client I/O thread";
    }
}

bool Call::done() const {
    std::lock_guard lock(mutex_);
    return done_;
}

} // namespace keyless::client
