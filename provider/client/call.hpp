// One request to a keyserver and its completion, shared between the caller (who waits) and the
// client's I/O thread (who completes it).
#pragma once

#include "protocol.hpp"
#include "uri.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace keyless::client {

enum class Failure {
    None,
    Unreachable, // could not connect, or the connection died (every endpoint tried)
    TlsFailure,  // the mTLS handshake with the keyserver failed
    Timeout,     // no reply within request_timeout_ms
    Protocol,    // the keyserver sent something we cannot read
};

class Call {
  public:
    // `gokeyless_form`: the same operation as a keyserver without keyless's extensions asks it
    // (none: the operation has no such form).
    Call(std::vector<Endpoint> targets, protocol::Operation req,
         std::chrono::steady_clock::time_point due,
         std::optional<protocol::Operation> gokeyless_form = std::nullopt)
        : endpoints(std::move(targets)), request(std::move(req)),
          fallback(std::move(gokeyless_form)), deadline(due) {}
    ~Call();
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;

    // Called once, by the I/O thread. Wakes the waiting thread and signals notify_fd if set.
    void complete(std::optional<protocol::Operation> response, Failure failure,
                  std::string message);
    // Blocks until completed (the I/O thread completes every call by its deadline; the extra
    // grace here only guards against an I/O thread that no longer exists).
    void wait();
    bool done() const;

    // Fixed at creation
    const std::vector<Endpoint> endpoints;
    const protocol::Operation request;
    const std::optional<protocol::Operation> fallback; // for keyservers without the extensions
    const std::chrono::steady_clock::time_point deadline;
    int notify_fd = -1; // owned: an eventfd written to (then closed) on completion (async jobs)

    // Set by the I/O thread (or a caller writing it, under the core's lock) until completion;
    // the rest of its routing state is the router's (router.hpp).
    std::string last_endpoint; // where it went last ("host:port"), for messages
    std::string probe_of;      // a background health probe of this endpoint (no caller waits)
    std::chrono::steady_clock::time_point sent_at; // when it was queued on a connection
    // The fallback, not the request, went to last_endpoint (it lacks keyless's extensions);
    // readable after wait(): the response answers that form.
    bool sent_fallback = false;
    const protocol::Operation& sent_form() const { return sent_fallback ? *fallback : request; }

    // Results, readable after wait()
    std::optional<protocol::Operation> response;
    Failure failure = Failure::None;
    std::string message;
    std::chrono::steady_clock::time_point completed_at; // when complete() ran (latency figures)

  private:
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
};

} // namespace keyless::client
