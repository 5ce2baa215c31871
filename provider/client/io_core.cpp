#include "io_core.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <set>

namespace keyless::client {

using Clock = std::chrono::steady_clock;

// A connection whose keyserver leaves more requests than this unanswered past their deadline is
// dropped and made again, which also bounds the memory spent remembering them.
constexpr size_t kMaxAbandoned = 4096;

IoCore::IoCore(SSL_CTX* tls, Settings settings, Resolver::Lookup lookup)
    : tls_(tls), settings_(std::move(settings)),
      router_(
          [rng = std::minstd_rand(std::random_device{}())]() mutable {
              return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
          },
          settings_.request_timeout),
      resolver_(std::move(lookup), [this] { wake(); }) {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    thread_ = std::thread([this] {
        // Nothing may escape this thread (it would end the terminator with std::terminate): a
        // failure fails this core's calls, and the client makes a new core for the next ones.
        try {
            run();
        } catch (const std::exception& e) {
            give_up(std::string("keyless client's I/O thread failed: ") + e.what());
        } catch (...) {
            give_up("keyless client's I/O thread failed");
        }
    });
}

void IoCore::give_up(const std::string& why) noexcept {
    try {
        std::lock_guard io(io_mutex_);
        failed_ = true;
        close_everything(why);
        // A caller that found this core just before it failed submits here: fail it at once.
        std::lock_guard lock(mutex_);
        stop_ = true;
    } catch (...) {
        // Calls left here end by their deadline (Call::wait).
    }
}

IoCore::~IoCore() {
    stop();
    resolver_.close(); // its threads wake us: not once the eventfd is gone
    ::close(wake_fd_);
}

void IoCore::stop(bool free_tls) {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
        free_tls_ = free_tls || free_tls_;
    }
    uint64_t one = 1;
    ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
    (void)ignored;
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void IoCore::child_after_fork() {
    // The resolver is left alone: its lock may have been held by a lookup thread of the parent,
    // and no thread of the child will ever call into it (the core is abandoned).
    for (int fd : open_fds_)
        ::close(fd);
    open_fds_.clear();
    ::close(wake_fd_);
    wake_fd_ = -1;
    forked_ = true;
    mutex_.unlock();
    io_mutex_.unlock();
}

void IoCore::wake() {
    uint64_t one = 1;
    ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
    (void)ignored;
}

// The caller frames and writes its own request when its keyserver's connection is ready and idle
// for writing, so a call costs the calling thread one write and one wake-up (by the I/O thread,
// when the reply has been read), not a hand-off to the I/O thread and back.
bool IoCore::send_directly(const std::shared_ptr<Call>& call, std::optional<Lead>* lead) {
    // Held: the I/O thread is awake and busy, and will take the call on its next turn.
    std::unique_lock io(io_mutex_, std::try_to_lock);
    if (!io.owns_lock() || stopped_) return false;
    // A name answered since the I/O thread last ran is an endpoint for this call too (the I/O
    // thread may sleep on while callers read their own replies); calls that waited for it go
    // where the I/O thread will see them.
    uint64_t routed = routes_;
    take_dns_answers();
    if (routes_ != routed) wake();
    auto name = router_.pick(*call, Clock::now());
    request_lookups();
    Connection* idle = name ? idle_connection(*name) : nullptr;
    if (!idle) return false;
    Connection& c = *idle;
    router_.assign(*call, c.name);
    c.queue(call);
    // No SIGPIPE to guard against: the connection's BIO sends with MSG_NOSIGNAL (socket_bio.hpp).
    bool sent = flush(c);
    if (lead && sent && !c.dead && c.out.empty() && !c.want_write) {
        c.led = true; // the caller reads the reply and keeps its deadline: no wake-up
        *lead = Lead{c.serial, c.fd};
        return true;
    }
    // The I/O thread must look again when the write is unfinished or the connection failed (its
    // calls moved on), or when this call's deadline comes before the I/O thread next wakes.
    if (!sent || !c.out.empty() || call->deadline < poll_deadline_) wake();
    return true;
}

Connection* IoCore::by_serial(uint64_t serial) {
    for (auto& [key, c] : connections_)
        if (c->serial == serial) return c.get();
    return nullptr;
}

void IoCore::lead(const std::shared_ptr<Call>& call, const Lead& lead) {
    bool buffered = false; // OpenSSL holds bytes poll() cannot see: read without waiting
    while (true) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(call->deadline - Clock::now());
        pollfd p{lead.fd, POLLIN | POLLRDHUP, 0};
        ::poll(&p, 1, buffered ? 0 : static_cast<int>(std::max<long>(0, left.count())));
        std::lock_guard io(io_mutex_);
        Connection* c = stopped_ ? nullptr : by_serial(lead.serial);
        // Gone or failed under us: the call was moved on or finished, by whoever saw it.
        if (!c || c->dead) return;
        uint64_t routed = routes_;
        if (p.revents || c->buffered) progress(*c);
        buffered = c->buffered;
        bool done = call->done();
        // TLS wanting to write (or bytes left to send) needs the I/O thread's POLLOUT.
        bool writing = c->want_write || !c->out.empty();
        if (!done && !c->dead && !writing && Clock::now() < call->deadline && routes_ == routed)
            continue;
        c->led = false;
        // The I/O thread takes over what it does not already watch: a call routed elsewhere
        // meanwhile, this call's deadline, a connection that failed or has bytes to write.
        // (Other calls sharing the connection made it poll for their replies already.)
        if (!done || routes_ != routed || c->dead || writing) wake();
        return;
    }
}

void IoCore::submit_and_wait(std::shared_ptr<Call> call) {
    std::optional<Lead> leading;
    if (!send_directly(call, &leading))
        enqueue(call);
    else if (leading)
        lead(call, *leading);
    call->wait();
}

// Only a connection with nothing in flight: the I/O thread then sleeps, and a hand-off would cost a
// wake-up. With requests in flight it is awake often, and framing the requests that arrive
// meanwhile into one write costs both sides less than a write each.
Connection* IoCore::idle_connection(const std::string& endpoint) {
    for (size_t slot = 0; slot < pool_size(); ++slot) {
        auto it = connections_.find(endpoint + "#" + std::to_string(slot));
        if (it == connections_.end()) continue;
        Connection& c = *it->second;
        if (!c.dead && c.state == Connection::State::Ready && !c.want_write && c.out.empty() &&
            c.pending.empty())
            return &c;
    }
    return nullptr;
}

void IoCore::submit(std::shared_ptr<Call> call) {
    // An OpenSSL ASYNC job (it passes a notify_fd) runs on a small stack of its own: it only
    // queues, as before; the I/O thread writes for it.
    if (call->notify_fd < 0 && send_directly(call, nullptr)) return;
    enqueue(std::move(call));
}

void IoCore::enqueue(std::shared_ptr<Call> call) {
    bool wake = false;
    {
        std::lock_guard lock(mutex_);
        if (stop_) {
            call->complete(std::nullopt, Failure::Unreachable, "keyless client is shutting down");
            return;
        }
        incoming_.push_back(std::move(call));
        wake = polling_;
        polling_ = false;
    }
    if (wake) this->wake(); // else the I/O thread is awake and will see the call before it sleeps
}

void IoCore::track_fd(int fd, bool open) {
    std::lock_guard lock(mutex_);
    if (open)
        open_fds_.push_back(fd);
    else
        open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
}

void IoCore::run() {
    // (A keyserver that closes a connection cannot raise SIGPIPE here: socket_bio.hpp.)
    std::vector<pollfd> fds;
    std::vector<Connection*> owners;
    while (true) {
        std::deque<std::shared_ptr<Call>> fresh;
        {
            std::lock_guard lock(mutex_);
            if (stop_) break;
            fresh.swap(incoming_);
        }
        std::unique_lock io(io_mutex_);
        work(fresh);
        auto next = poll_set(fds, owners);
        auto wait_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count();
        poll_deadline_ = next;
        io.unlock();
        {
            // Callers write the eventfd only while this thread sleeps in poll(), once per sleep.
            std::lock_guard lock(mutex_);
            if (incoming_.empty())
                polling_ = true;
            else
                wait_ms = -1; // more work already: look again without sleeping
        }
        ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long>(-1, wait_ms) + 1));
        {
            std::lock_guard lock(mutex_);
            polling_ = false;
        }
        io.lock();
        after_poll(fds, owners);
    }
    std::lock_guard io(io_mutex_);
    // Shutting down, usually from inside OPENSSL_cleanup() at process exit.
    close_everything("keyless client is shutting down");
}

void IoCore::work(std::deque<std::shared_ptr<Call>>& fresh) {
    take_dns_answers();
    // Every request that arrived since the last turn is framed first, then each connection sends
    // them in one TLS write.
    for (auto& call : fresh)
        route(call);
    for (auto& probe : router_.due_probes(Clock::now()))
        route(probe);
    request_lookups();
    for (auto& [name, c] : connections_)
        if (!c->dead && c->state == Connection::State::Ready && !c->out.empty()) flush(*c);
    // Connections that failed are dropped now that nothing up the stack refers to them.
    graveyard_.clear();
    for (auto it = connections_.begin(); it != connections_.end();)
        it = it->second->dead ? connections_.erase(it) : std::next(it);
}

Clock::time_point IoCore::poll_set(std::vector<pollfd>& fds, std::vector<Connection*>& owners) {
    auto now = Clock::now();
    auto next = now + std::chrono::seconds(1);
    if (auto wake = router_.next_wake()) next = std::min(next, std::max(now, *wake));
    fds.assign(1, pollfd{wake_fd_, POLLIN, 0});
    owners.assign(1, nullptr);
    for (auto& [name, c] : connections_) {
        // An idle connection, or one where a caller's own call is alone in flight (it reads the
        // reply), is watched only for the keyserver closing it: a reply arriving there wakes its
        // caller, not this thread too. Once other calls share a led connection, this thread
        // reads for them as for any other.
        bool alone =
            c->pending.size() + c->waiting.size() + c->abandoned.size() <= (c->led ? 1 : 0);
        short events = c->state == Connection::State::Ready && alone ? POLLRDHUP : POLLIN;
        if (c->state == Connection::State::Connecting || c->want_write || !c->out.empty())
            events |= POLLOUT;
        if (c->state != Connection::State::Ready) next = std::min(next, c->connect_deadline);
        if (c->buffered) next = now; // read it again at once: poll() cannot see those bytes
        if (c->fd < 0) continue;     // failed to connect: expire() reports it
        fds.push_back(pollfd{c->fd, events, 0});
        owners.push_back(c.get());
        for (auto& [id, call] : c->pending)
            next = std::min(next, call->deadline);
        for (auto& call : c->waiting)
            next = std::min(next, call->deadline);
    }
    return next;
}

void IoCore::after_poll(const std::vector<pollfd>& fds, const std::vector<Connection*>& owners) {
    poll_deadline_ = Clock::time_point::max(); // awake: sees every new call before sleeping
    if (fds[0].revents & POLLIN) {
        uint64_t drained;
        ssize_t ignored = ::read(wake_fd_, &drained, sizeof drained);
        (void)ignored;
    }
    for (size_t i = 1; i < fds.size(); ++i)
        if ((fds[i].revents || owners[i]->buffered) && !owners[i]->dead) progress(*owners[i]);
    expire(Clock::now());
}

// Every outstanding call fails now (no retry or failover), sockets close, and the SSL objects are
// left alone unless the owner said to free them (freeing OpenSSL objects while OpenSSL tears
// itself down corrupts the heap; the process is ending anyway). Under io_mutex_.
void IoCore::close_everything(const std::string& why) {
    stopped_ = true;
    {
        std::lock_guard lock(mutex_);
        for (auto& call : incoming_)
            call->complete(std::nullopt, Failure::Unreachable, why);
        incoming_.clear();
    }
    bool free_tls;
    {
        std::lock_guard lock(mutex_);
        free_tls = free_tls_;
    }
    auto drop_tls = [&](Connection& c) {
        if (free_tls)
            c.ssl.reset();
        else
            (void)c.ssl.release();
    };
    for (auto& [name, c] : connections_) {
        drop_tls(*c);
        if (c->fd >= 0) ::close(c->fd);
        for (auto& [id, call] : c->pending)
            finish(call, std::nullopt, Failure::Unreachable, why);
        for (auto& call : c->waiting)
            finish(call, std::nullopt, Failure::Unreachable, why);
    }
    for (auto& c : graveyard_)
        drop_tls(*c);
    for (auto& call : router_.take_dns_waiters())
        finish(call, std::nullopt, Failure::Unreachable, why);
    resolver_.close();
    connections_.clear();
    graveyard_.clear();
}

void IoCore::request_lookups() {
    for (const auto& host : router_.take_lookups())
        resolver_.request(host);
}

void IoCore::take_dns_answers() {
    auto answers = resolver_.take_answers();
    if (answers.empty()) return;
    auto now = Clock::now();
    for (auto& [host, answer] : answers) {
        auto departed = router_.answered(host, std::move(answer), now);
        if (!departed.empty()) close_departed(host, departed);
    }
    for (auto& call : router_.take_dns_waiters())
        route(call);
}

// Connections to addresses of `host` that DNS no longer gives are not kept (a busy one finishes
// its requests first and is dropped once it fails).
void IoCore::close_departed(const std::string& host, const std::vector<std::string>& addresses) {
    for (auto& [key, c] : connections_)
        if (!c->dead && c->endpoint.host == host &&
            std::find(addresses.begin(), addresses.end(), c->endpoint.address) != addresses.end() &&
            c->pending.empty() && c->waiting.empty()) {
            c->dead = true;
            if (c->fd >= 0) track_fd(c->fd, false);
            c->close();
        }
}

void IoCore::finish(const std::shared_ptr<Call>& call, std::optional<protocol::Operation> response,
                    Failure failure, const std::string& message) {
    router_.finished(*call, response, message, Clock::now());
    call->complete(std::move(response), failure, message);
}

void IoCore::route(const std::shared_ptr<Call>& call) {
    if (call->done()) return;
    ++routes_;
    auto decision = router_.route(call, Clock::now());
    request_lookups();
    switch (decision.kind) {
    case Router::Decision::Kind::AwaitDns:
        return;
    case Router::Decision::Kind::Fail:
        return finish(call, std::nullopt, Failure::Unreachable, decision.why);
    case Router::Decision::Kind::Send:
        break;
    }
    Connection& c = connection_for(decision.endpoint);
    router_.assign(*call, c.name);
    if (c.state == Connection::State::Ready)
        c.queue(call);
    else
        c.waiting.push_back(call);
}

size_t IoCore::pool_size() const {
    return std::max<size_t>(1, settings_.connections_per_server);
}

// A free slot of the endpoint's pool gets a new connection; else the connection with the fewest
// requests outstanding carries the call.
Connection& IoCore::connection_for(const Endpoint& ep) {
    std::string name = ep.to_string();
    Connection* best = nullptr;
    for (size_t slot = 0; slot < pool_size(); ++slot) {
        std::string key = name + "#" + std::to_string(slot);
        auto it = connections_.find(key);
        if (it == connections_.end() || it->second->dead) {
            if (it != connections_.end())
                graveyard_.push_back(std::move(it->second)); // may still be referenced up the stack
            auto c = std::make_unique<Connection>();
            c->endpoint = ep;
            c->name = name;
            c->serial = ++connections_made_;
            c->connect_deadline = Clock::now() + settings_.connect_timeout;
            Connection& ref = *c;
            connections_[key] = std::move(c);
            ref.start_connect();
            if (ref.fd >= 0) track_fd(ref.fd, true);
            return ref;
        }
        Connection& c = *it->second;
        if (!best ||
            c.pending.size() + c.waiting.size() < best->pending.size() + best->waiting.size())
            best = &c;
    }
    return *best;
}

void IoCore::progress(Connection& c) {
    bool became_ready = false;
    if (auto error = c.advance(tls_, became_ready)) return fail(c, error->failure, error->why);
    if (became_ready) {
        auto waiting = std::move(c.waiting);
        c.waiting.clear();
        for (auto& call : waiting)
            c.queue(call);
    }
    if (c.state != Connection::State::Ready || !flush(c)) return;
    auto error = c.read([&](const std::shared_ptr<Call>& call, protocol::Operation reply) {
        c.last_reply = Clock::now();
        switch (router_.replied(*call, c.name, reply, c.last_reply)) {
        case Router::AfterReply::ResendFallback:
            return c.queue(call); // on the same connection, in gokeyless's form
        case Router::AfterReply::Reroute:
            return route(call);
        case Router::AfterReply::Finish:
            break;
        }
        finish(call, std::move(reply), Failure::None, {});
    });
    if (error) fail(c, error->failure, error->why);
}

bool IoCore::flush(Connection& c) {
    if (auto error = c.flush()) {
        fail(c, error->failure, error->why);
        return false;
    }
    return true;
}

void IoCore::fail(Connection& c, Failure failure, const std::string& why) {
    if (c.dead) return;
    c.dead = true; // stays in connections_ (and its memory valid) until the loop's next turn
    router_.connection_died(c.name);
    if (c.fd >= 0) track_fd(c.fd, false);
    c.close();
    std::vector<std::shared_ptr<Call>> unsent(c.waiting.begin(), c.waiting.end());
    std::vector<std::shared_ptr<Call>> sent;
    for (auto& [id, call] : c.pending)
        sent.push_back(call);
    c.waiting.clear();
    c.pending.clear();
    // A keyserver that cannot be connected to (refused, unreachable, TLS failure, silent) is
    // down. An established connection that drops says less: the keyserver may be gone, or a
    // balancer in front of it moved on, or it closed an idle connection; the next connection
    // to it tells which.
    auto now = Clock::now();
    if (c.state != Connection::State::Ready) router_.connect_failed(c.endpoint, why, now);
    std::string message = "keyserver " + c.name + ": " + why;
    // Requests never sent go where they can, as new ones would; one that was sent is tried once
    // more. Else this failure is the answer.
    for (auto [calls, setback] :
         {std::pair{&unsent, Router::Setback::Unsent}, std::pair{&sent, Router::Setback::Sent}})
        for (auto& call : *calls) {
            if (call->done()) continue;
            if (router_.retry_elsewhere(*call, setback, now))
                route(call);
            else
                finish(call, std::nullopt, failure, message);
        }
}

void IoCore::expire(Clock::time_point now) {
    for (auto& [call, why] : router_.expire_dns_waits(now))
        finish(call, std::nullopt, Failure::Timeout, why);
    for (auto& [name, c] : connections_) {
        if (c->dead) continue;
        if (c->state != Connection::State::Ready && now >= c->connect_deadline) {
            std::string why = !c->connect_error.empty()
                                  ? c->connect_error
                                  : "connect timed out after " +
                                        std::to_string(settings_.connect_timeout.count()) + " ms";
            fail(*c, Failure::Unreachable, "cannot connect: " + why);
            continue;
        }
        expire_calls(*c, now);
    }
}

// The connection's calls past their deadline fail; a keyserver leaving too many unanswered is
// dropped and connected to again.
void IoCore::expire_calls(Connection& c, Clock::time_point now) {
    auto timed_out = [&](const std::shared_ptr<Call>& call, bool sent) {
        if (now < call->deadline) return false;
        std::string why =
            "no reply within " + std::to_string(settings_.request_timeout.count()) + " ms";
        // A keyserver that accepts and never answers is down like one that refuses; one that
        // answered other requests since this one was sent is up, and only this request's key is
        // slow (a busy token): the other keys keep the endpoint.
        if (sent && c.last_reply > call->sent_at)
            why += " (the keyserver answers other requests: this key's operation is slow)";
        else
            router_.timed_out(c.name, why, now);
        finish(call, std::nullopt, Failure::Timeout, "keyserver " + c.name + ": " + why);
        return true;
    };
    for (auto it = c.pending.begin(); it != c.pending.end();) {
        if (!timed_out(it->second, true)) {
            ++it;
            continue;
        }
        c.abandoned.insert(it->first); // a late reply to it is expected, and dropped
        it = c.pending.erase(it);
    }
    if (c.abandoned.size() > kMaxAbandoned) {
        fail(c, Failure::Unreachable,
             "keyserver " + c.name + " left " + std::to_string(c.abandoned.size()) +
                 " requests unanswered past their deadline; reconnecting");
        return;
    }
    std::erase_if(c.waiting, [&](const auto& call) { return timed_out(call, false); });
}

} // namespace keyless::client
