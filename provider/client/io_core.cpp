#include "io_core.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
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
      endpoints_([rng = std::minstd_rand(std::random_device{}())]() mutable {
          return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
      }),
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
bool IoCore::send_directly(const std::shared_ptr<Call>& call) {
    // Held: the I/O thread is awake and busy, and will take the call on its next turn.
    std::unique_lock io(io_mutex_, std::try_to_lock);
    if (!io.owns_lock() || stopped_) return false;
    auto targets = concrete(*call);
    auto name = endpoints_.pick(names_of(targets.endpoints), call->tried);
    if (!name) return false;
    // Only on a connection with nothing in flight: the I/O thread then sleeps, and a hand-off
    // would cost a wake-up. With requests in flight it is awake often, and framing the requests
    // that arrive meanwhile into one write costs both sides less than a write each.
    Connection* idle = nullptr;
    for (size_t slot = 0; slot < pool_size() && !idle; ++slot) {
        auto it = connections_.find(*name + "#" + std::to_string(slot));
        if (it == connections_.end()) continue;
        Connection& c = *it->second;
        if (!c.dead && c.state == Connection::State::Ready && !c.want_write && c.out.empty() &&
            c.pending.empty())
            idle = &c;
    }
    if (!idle) return false;
    Connection& c = *idle;
    endpoints_.picked();
    assign(*call, c.name);
    c.queue(call);
    // The application's threads may not ignore SIGPIPE: the signal a write to a connection the
    // keyserver closed raises is held back here, and taken if this write raised it.
    sigset_t pipe, old, before, after;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old);
    sigpending(&before);
    bool sent = flush(c);
    sigpending(&after);
    if (sigismember(&after, SIGPIPE) && !sigismember(&before, SIGPIPE)) {
        timespec now{};
        sigtimedwait(&pipe, nullptr, &now);
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    // The I/O thread must look again when the write is unfinished or the connection failed (its
    // calls moved on), or when this call's deadline comes before the I/O thread next wakes.
    if (!sent || !c.out.empty() || call->deadline < poll_deadline_) wake();
    return true;
}

void IoCore::submit(std::shared_ptr<Call> call) {
    // An OpenSSL ASYNC job (it passes a notify_fd) runs on a small stack of its own: it only
    // queues, as before; the I/O thread writes for it.
    if (call->notify_fd < 0 && send_directly(call)) return;
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
    // A keyserver that closes a connection must not kill the host application with SIGPIPE when
    // we write to it: the signal is blocked in this thread, where OpenSSL's writes happen (it is
    // thread-directed, so it stays pending here and never reaches the application).
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
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
        take_dns_answers();
        // Every request that arrived since the last turn is framed first, then each connection
        // sends them in one TLS write.
        for (auto& call : fresh)
            route(call);
        probe_down_endpoints(Clock::now());
        for (auto& [name, c] : connections_)
            if (!c->dead && c->state == Connection::State::Ready && !c->out.empty()) flush(*c);

        // Drop connections that failed, then wait for I/O or the nearest deadline.
        graveyard_.clear();
        for (auto it = connections_.begin(); it != connections_.end();)
            it = it->second->dead ? connections_.erase(it) : std::next(it);
        auto now = Clock::now();
        auto next = now + std::chrono::seconds(1);
        if (auto probe = endpoints_.next_probe()) next = std::min(next, std::max(now, *probe));
        for (auto& call : awaiting_dns_)
            next = std::min(next, call->deadline);
        fds.assign(1, pollfd{wake_fd_, POLLIN, 0});
        owners.assign(1, nullptr);
        for (auto& [name, c] : connections_) {
            short events = POLLIN;
            if (c->state == Connection::State::Connecting || c->want_write || !c->out.empty())
                events |= POLLOUT;
            if (c->state != Connection::State::Ready) next = std::min(next, c->connect_deadline);
            if (c->fd < 0) continue; // failed to connect: expire() reports it
            fds.push_back(pollfd{c->fd, events, 0});
            owners.push_back(c.get());
            for (auto& [id, call] : c->pending)
                next = std::min(next, call->deadline);
            for (auto& call : c->waiting)
                next = std::min(next, call->deadline);
        }
        auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
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
        poll_deadline_ = Clock::time_point::max(); // awake: sees every new call before sleeping
        if (fds[0].revents & POLLIN) {
            uint64_t drained;
            ssize_t ignored = ::read(wake_fd_, &drained, sizeof drained);
            (void)ignored;
        }
        for (size_t i = 1; i < fds.size(); ++i)
            if (fds[i].revents && !owners[i]->dead) progress(*owners[i]);
        expire(Clock::now());
    }
    std::lock_guard io(io_mutex_);
    // Shutting down, usually from inside OPENSSL_cleanup() at process exit.
    close_everything("keyless client is shutting down");
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
            call->complete(std::nullopt, Failure::Unreachable, why);
        for (auto& call : c->waiting)
            call->complete(std::nullopt, Failure::Unreachable, why);
    }
    for (auto& c : graveyard_)
        drop_tls(*c);
    for (auto& call : awaiting_dns_)
        call->complete(std::nullopt, Failure::Unreachable, why);
    awaiting_dns_.clear();
    resolver_.close();
    connections_.clear();
    graveyard_.clear();
}

DnsCache::Expansion IoCore::concrete(const Call& call) {
    DnsCache::Expansion out;
    auto now = Clock::now();
    for (const auto& ep : call.endpoints)
        dns_.expand(ep, now, out);
    for (const auto& host : dns_.take_wanted())
        resolver_.request(host);
    return out;
}

bool IoCore::can_move(const Call& call) {
    auto targets = concrete(call);
    return targets.pending || endpoints_.pick(names_of(targets.endpoints), call.tried);
}

void IoCore::take_dns_answers() {
    auto answers = resolver_.take_answers();
    if (answers.empty()) return;
    auto now = Clock::now();
    for (auto& [host, answer] : answers) {
        auto departed = dns_.answered(host, std::move(answer), now);
        if (!departed.empty()) forget_departed(host, departed);
    }
    auto waited = std::exchange(awaiting_dns_, {});
    for (auto& call : waited)
        route(call);
}

// Endpoints of `host` at addresses DNS no longer gives: no probes, no health, no connections
// kept for them (a busy connection finishes its requests first and is dropped once it fails).
void IoCore::forget_departed(const std::string& host, const std::vector<std::string>& addresses) {
    auto departed = [&](const Endpoint& ep) {
        return ep.host == host &&
               std::find(addresses.begin(), addresses.end(), ep.address) != addresses.end();
    };
    for (auto it = known_.begin(); it != known_.end();) {
        if (!departed(it->second)) {
            ++it;
            continue;
        }
        endpoints_.forget(it->first);
        epochs_.erase(it->first);
        extensions_.forget(it->first);
        it = known_.erase(it);
    }
    for (auto& [key, c] : connections_)
        if (!c->dead && departed(c->endpoint) && c->pending.empty() && c->waiting.empty()) {
            c->dead = true;
            if (c->fd >= 0) track_fd(c->fd, false);
            c->close();
        }
}

std::vector<std::string> IoCore::names_of(const std::vector<Endpoint>& endpoints) {
    std::vector<std::string> names;
    for (const auto& ep : endpoints)
        names.push_back(ep.to_string());
    return names;
}

void IoCore::count(Call& call, const std::string& endpoint) {
    uncount(call);
    endpoints_.started(endpoint);
    call.counted_at = endpoint;
}

void IoCore::uncount(Call& call) {
    if (call.counted_at.empty()) return;
    endpoints_.finished(call.counted_at);
    call.counted_at.clear();
}

void IoCore::finish(const std::shared_ptr<Call>& call, std::optional<protocol::Operation> response,
                    Failure failure, const std::string& message) {
    uncount(*call);
    if (!call->probe_of.empty()) {
        if (response && response->is(protocol::Opcode::Pong))
            endpoints_.succeeded(call->probe_of);
        else
            endpoints_.failed(call->probe_of, "probe: " + message, Clock::now());
    }
    call->complete(std::move(response), failure, message);
}

// To the healthy endpoint with the fewest requests outstanding, on its least busy connection;
// when no endpoint of the URI is healthy (or left untried), the call fails at once, saying why
// for each.
void IoCore::route(const std::shared_ptr<Call>& call) {
    if (call->done()) return;
    auto expansion = concrete(*call);
    const std::vector<Endpoint>& targets = expansion.endpoints;
    std::vector<std::string> names = names_of(targets);
    std::optional<std::string> name =
        call->probe_of.empty() ? endpoints_.pick(names, call->tried) : call->probe_of;
    if (!name && expansion.pending) {
        awaiting_dns_.push_back(call); // routed again when a name is answered, or expires
        return;
    }
    if (!name) {
        std::vector<std::string> reasons = expansion.unresolved;
        if (!names.empty()) reasons.push_back(endpoints_.why_all_down(names, Clock::now()));
        std::string why;
        for (const auto& reason : reasons)
            why += (why.empty() ? "" : "; ") + reason;
        finish(call, std::nullopt, Failure::Unreachable,
               names.size() + expansion.unresolved.size() == 1
                   ? why
                   : "no keyserver of the URI can take it: " + why);
        return;
    }
    auto found = std::find_if(targets.begin(), targets.end(),
                              [&](const Endpoint& e) { return e.to_string() == *name; });
    // A probe's endpoint may have left its name's addresses: it is probed as it was known.
    auto remembered = known_.find(*name);
    if (found == targets.end() && remembered == known_.end()) {
        finish(call, std::nullopt, Failure::Unreachable, *name + " is no longer in DNS");
        return;
    }
    Endpoint ep = found != targets.end() ? *found : remembered->second;
    known_[*name] = ep;
    if (call->probe_of.empty()) endpoints_.picked();
    Connection& c = connection_for(ep);
    assign(*call, c.name);
    if (c.state == Connection::State::Ready)
        c.queue(call);
    else
        c.waiting.push_back(call);
}

void IoCore::assign(Call& call, const std::string& endpoint) {
    call.last_endpoint = endpoint;
    call.endpoint_epoch = epochs_[endpoint];
    call.sent_fallback = call.fallback && extensions_.lacks(endpoint, call.endpoint_epoch);
    count(call, endpoint);
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

void IoCore::probe_down_endpoints(Clock::time_point now) {
    for (const auto& name : endpoints_.take_due_probes(now)) {
        auto ep = known_.find(name);
        if (ep == known_.end()) {
            endpoints_.probe_ended(name);
            continue;
        }
        auto probe =
            std::make_shared<Call>(std::vector<Endpoint>{ep->second},
                                   protocol::Operation::make(protocol::Opcode::Ping, {'k', 'l'}),
                                   now + settings_.request_timeout);
        probe->probe_of = name;
        route(probe);
    }
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
        // A reply proves the endpoint works (a probe's Pong is counted in finish()).
        if (call->probe_of.empty()) endpoints_.succeeded(c.name);
        // A keyserver without keyless's extensions (gokeyless): the same operation in its form,
        // on the same connection, at once, and later calls to it in that form from the start.
        // An operation with no such form (get-public-key, Ed448, ML-DSA) may be known to another
        // keyserver of the URI (a fleet halfway through an upgrade).
        if (protocol::error_of(reply) == protocol::ErrorCode::BadOpcode && !call->sent_fallback &&
            call->probe_of.empty()) {
            extensions_.refused(c.name, call->endpoint_epoch);
            if (call->fallback) {
                call->sent_fallback = true;
                return c.queue(call);
            }
            call->tried.push_back(c.name);
            if (Clock::now() < call->deadline && can_move(*call)) return route(call);
        }
        // Shed by this keyserver (rate limit or full buffers): another of the URI's fleet may
        // have room, while the deadline allows.
        if (protocol::error_of(reply) == protocol::ErrorCode::Overloaded &&
            Clock::now() < call->deadline) {
            call->tried.push_back(c.name);
            if (can_move(*call)) return route(call);
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
    ++epochs_[c.name];
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
    if (c.state != Connection::State::Ready) {
        endpoints_.failed(c.name, why, now);
        // The name may point elsewhere now: look it up again (its addresses serve meanwhile).
        if (!c.endpoint.address.empty()) dns_.stale(c.endpoint.host);
    }
    std::string message = "keyserver " + c.name + ": " + why;
    // Elsewhere while the deadline allows and an endpoint can take it; else this failure is the
    // answer (a probe is never moved).
    auto move_on = [&](const std::shared_ptr<Call>& call) {
        if (call->probe_of.empty() && now < call->deadline && can_move(*call))
            route(call);
        else
            finish(call, std::nullopt, failure, message);
    };
    // Requests never sent go where they can, as new ones would.
    for (auto& call : unsent) {
        uncount(*call);
        if (!call->done()) move_on(call);
    }
    // A request sent on the connection is tried once more (signing and TLS decryption are safe
    // to repeat).
    for (auto& call : sent) {
        uncount(*call);
        if (call->done()) continue;
        if (call->retries_left-- > 0)
            move_on(call);
        else
            finish(call, std::nullopt, failure, message);
    }
}

void IoCore::expire(Clock::time_point now) {
    std::erase_if(awaiting_dns_, [&](const std::shared_ptr<Call>& call) {
        if (now < call->deadline) return false;
        std::string hosts;
        for (const auto& ep : call->endpoints)
            if (!is_ip_literal(ep.host)) hosts += (hosts.empty() ? "" : ", ") + ep.host;
        finish(call, std::nullopt, Failure::Timeout,
               "no address for " + hosts + " within " +
                   std::to_string(settings_.request_timeout.count()) +
                   " ms: the DNS lookup is slow or the resolver does not answer");
        return true;
    });
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
        auto timed_out = [&](const std::shared_ptr<Call>& call, bool sent) {
            if (now < call->deadline) return false;
            std::string why =
                "no reply within " + std::to_string(settings_.request_timeout.count()) + " ms";
            // A keyserver that accepts and never answers is down like one that refuses; one
            // that answered other requests since this one was sent is up, and only this
            // request's key is slow (a busy token): the other keys keep the endpoint.
            if (sent && c->last_reply > call->sent_at)
                why += " (the keyserver answers other requests: this key's operation is slow)";
            else
                endpoints_.failed(c->name, why, now);
            finish(call, std::nullopt, Failure::Timeout, "keyserver " + c->name + ": " + why);
            return true;
        };
        for (auto it = c->pending.begin(); it != c->pending.end();) {
            if (!timed_out(it->second, true)) {
                ++it;
                continue;
            }
            c->abandoned.insert(it->first); // a late reply to it is expected, and dropped
            it = c->pending.erase(it);
        }
        if (c->abandoned.size() > kMaxAbandoned) {
            fail(*c, Failure::Unreachable,
                 "keyserver " + c->name + " left " + std::to_string(c->abandoned.size()) +
                     " requests unanswered past their deadline; reconnecting");
            continue;
        }
        c->waiting.erase(std::remove_if(c->waiting.begin(), c->waiting.end(),
                                        [&](const auto& call) { return timed_out(call, false); }),
                         c->waiting.end());
    }
}

} // namespace keyless::client
