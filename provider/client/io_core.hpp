// The client's reactor: one I/O thread polling its connections (connection.hpp), woken by an
// eventfd, keeping connect and request deadlines, and carrying out what the router (router.hpp)
// decides: which endpoint of the URI a request goes to, whether a setback sends it elsewhere,
// which down endpoints to probe and which names to look up (the resolver, resolver.hpp, looks
// them up off this thread). Each endpoint has a pool of connections_per_server connections. A
// caller whose connection is idle writes its own request (one write, never blocking: what does
// not fit is left to the I/O thread); any other request, and every request from an OpenSSL ASYNC
// job (whose small stack runs no network code), is queued for the I/O thread. So a slow
// keyserver never blocks more than its own callers. A caller that waits for its call
// (submit_and_wait) and wrote it itself also reads its own reply: it leads that connection until
// the reply or its deadline, and the I/O thread, which watches an idle or led connection only for
// the keyserver closing it (POLLRDHUP), sleeps on. So such a call costs one wake-up, the
// caller's, instead of two (the I/O thread's, then the caller's). The facade the provider calls
// is client.hpp.
#pragma once

#include "call.hpp"
#include "connection.hpp"
#include "ossl.hpp"
#include "resolver.hpp"
#include "router.hpp"
#include "settings.hpp"

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include <poll.h>

namespace keyless::client {

class IoCore {
  public:
    // `lookup`: how host names are looked up (the system's resolver), on the resolver's threads.
    IoCore(SSL_CTX* tls, Settings settings, Resolver::Lookup lookup = resolve_with_system);
    ~IoCore();
    IoCore(const IoCore&) = delete;
    IoCore& operator=(const IoCore&) = delete;

    void submit(std::shared_ptr<Call> call);
    // submit() and wait for the call, reading its reply on the caller's thread when it can.
    void submit_and_wait(std::shared_ptr<Call> call);
    // Ends the I/O thread (outstanding calls fail at once); idempotent. Later submits fail by
    // their deadline. `free_tls`: free the connections' TLS objects (not from inside
    // OPENSSL_cleanup() at exit, where freeing OpenSSL objects corrupts the heap).
    void stop(bool free_tls = false);

    // After fork() the child has no I/O thread: these run in the child's fork handler (one thread,
    // mutexes held by prepare_fork) and close the inherited sockets without any TLS traffic, so
    // the parent's connections are untouched. The core is then abandoned by its owner.
    // prepare_fork waits for the I/O thread's turn (or a caller's write) to end, so no TLS
    // operation of this core, and none of OpenSSL's locks it takes, is split by the fork.
    void prepare_fork() {
        io_mutex_.lock();
        mutex_.lock();
    }
    void parent_after_fork() {
        mutex_.unlock();
        io_mutex_.unlock();
    }
    void child_after_fork();
    bool forked() const { return forked_; }
    // The I/O thread ended by an error (its calls failed): the owner makes a new core.
    bool failed() const { return failed_; }

  private:
    void run();
    // One turn of the loop, under io_mutex_: route what arrived, probe, answer DNS, write.
    void work(std::deque<std::shared_ptr<Call>>& fresh);
    // What to poll and until when; then the turn after poll(): read, write, expire.
    std::chrono::steady_clock::time_point poll_set(std::vector<pollfd>& fds,
                                                   std::vector<Connection*>& owners);
    void after_poll(const std::vector<pollfd>& fds, const std::vector<Connection*>& owners);
    void give_up(const std::string& why) noexcept;
    void close_everything(const std::string& why);
    // The connection a caller leads: found again by serial (it may have died meanwhile).
    struct Lead {
        uint64_t serial;
        int fd;
    };
    // Writes the caller's request on an idle connection; with `lead`, the caller will read the
    // reply too when the request left in full (`lead` is set then).
    bool send_directly(const std::shared_ptr<Call>& call, std::optional<Lead>* lead);
    void enqueue(std::shared_ptr<Call> call);
    // The caller reads replies on its connection until its call is done or its deadline, then
    // hands whatever is left to the I/O thread.
    void lead(const std::shared_ptr<Call>& call, const Lead& lead);
    Connection* by_serial(uint64_t serial);
    void wake();
    void route(const std::shared_ptr<Call>& call);
    void request_lookups();
    Connection& connection_for(const Endpoint& ep);
    Connection* idle_connection(const std::string& endpoint);
    size_t pool_size() const;
    // Takes the resolver's answers to the router, closes idle connections to addresses that left
    // DNS, and routes the calls that waited for a name.
    void take_dns_answers();
    void close_departed(const std::string& host, const std::vector<std::string>& addresses);
    // Completes `call`, telling the router (its count, a probe's result).
    void finish(const std::shared_ptr<Call>& call, std::optional<protocol::Operation> response,
                Failure failure, const std::string& message);
    void progress(Connection& c);
    bool flush(Connection& c);
    void fail(Connection& c, Failure failure, const std::string& why);
    void expire(std::chrono::steady_clock::time_point now);
    void expire_calls(Connection& c, std::chrono::steady_clock::time_point now);
    void track_fd(int fd, bool open);

    SSL_CTX* tls_; // owned by the Client; outlives the core
    const Settings settings_;

    std::mutex mutex_; // guards incoming_, polling_, open_fds_, stop_
    std::deque<std::shared_ptr<Call>> incoming_;
    bool polling_ = false; // the I/O thread sleeps in poll(): a submit must wake it
    std::vector<int> open_fds_;
    bool stop_ = false;
    bool free_tls_ = false; // set with stop_
    bool forked_ = false;
    std::atomic<bool> failed_{false};
    int wake_fd_ = -1;
    std::thread thread_;

    // Held by whoever touches the connections below and their TLS state: the I/O thread for a
    // turn of its loop (never while it sleeps in poll()), or a caller writing its own request.
    std::mutex io_mutex_;
    // When the sleeping I/O thread wakes by itself (max() while it is awake).
    std::chrono::steady_clock::time_point poll_deadline_ =
        std::chrono::steady_clock::time_point::max();
    bool stopped_ = false; // the I/O thread has ended

    Router router_;     // where calls go; what the endpoints' health is
    Resolver resolver_; // closed before wake_fd_ is
    std::map<std::string, std::unique_ptr<Connection>> connections_; // by "host:port#slot"
    std::vector<std::unique_ptr<Connection>> graveyard_; // failed, freed on the loop's next turn
    uint64_t connections_made_ = 0;
    uint64_t routes_ = 0; // calls routed: a leader that routed one wakes the I/O thread
};

} // namespace keyless::client
