#include "net/connection.hpp"

#include "observe/log.hpp"

#include <cstring>

namespace keyless::keyserver {

using protocol::FormatError;

Connection::Connection(tcp::socket socket, std::shared_ptr<asio::ssl::context> tls,
                       std::shared_ptr<ServerShared> shared)
    : tls_(std::move(tls)), stream_(std::move(socket), *tls_), timer_(stream_.get_executor()),
      shared_(std::move(shared)) {
    boost::system::error_code ec;
    auto ep = stream_.lowest_layer().remote_endpoint(ec);
    source_ = ec ? "unknown" : ep.address().to_string();
    peer_ = ec ? "unknown" : source_ + ":" + std::to_string(ep.port());
}

Connection::~Connection() {
    account(0, buffered_); // replies never written
    shared_->buffer_capacity -= capacity_;
    shared_->untrack(this);
    if (budget_ticket_) shared_->handshakes.leave(*budget_ticket_);
    if (authenticated_) --shared_->authenticated;
}

void Connection::refuse() {
    close("");
}

void Connection::evict() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
        self->budget_ticket_.reset(); // the budget already forgot it
        // Its handshake may have completed meanwhile (same strand, so this is race-free): an
        // authenticated edge is never evicted.
        if (self->handshake_done_) return;
        self->close("");
    });
}

void Connection::recheck_client(std::shared_ptr<asio::ssl::context> tls) {
    asio::post(stream_.get_executor(), [self = shared_from_this(), tls] {
        if (self->closed_) return;
        SSL* ssl = self->stream_.native_handle();
        std::string why;
        {
            // One at a time: verifying caches results inside the shared certificate objects
            // (ThreadSanitizer saw two connections' rechecks write and compare the same ones).
            std::lock_guard one(self->shared_->recheck_mutex);
            why = untrusted_because(*tls, SSL_get0_peer_certificate(ssl),
                                    SSL_get_peer_cert_chain(ssl));
        }
        if (!why.empty())
            self->close("client '" + self->client_.display() +
                        "' is no longer trusted after reload: " + why);
    });
}

void Connection::drain() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
        if (self->closed_) return;
        // Nothing more is read: the pending read ends, and the connection closes once every
        // request it already read is answered.
        boost::system::error_code ignored;
        self->stream_.lowest_layer().shutdown(tcp::socket::shutdown_receive, ignored);
        self->end_of_input();
    });
}

void Connection::start(uint64_t ticket) {
    budget_ticket_ = ticket;
    arm_timer(shared_->limits.handshake_timeout);
    stream_.async_handshake(asio::ssl::stream_base::server,
                            [self = shared_from_this()](const boost::system::error_code& ec) {
                                self->on_handshake(ec);
                            });
}

void Connection::on_handshake(const boost::system::error_code& ec) {
    if (budget_ticket_) shared_->handshakes.leave(*budget_ticket_);
    budget_ticket_.reset();
    if (closed_) return; // evicted meanwhile
    if (ec) {
        // One line per reason and interval: an unauthenticated flood must not flood the log.
        shared_->metrics.count_refusal("handshake_failed");
        shared_->handshake_failures.note(ec.message(), "from " + peer_);
        close("");
        return;
    }
    handshake_done_ = true;
    if (++shared_->authenticated > shared_->limits.max_connections) {
        --shared_->authenticated;
        shared_->metrics.count_refusal("max_connections");
        shared_->budget_log.note("max_connections (" +
                                     std::to_string(shared_->limits.max_connections) +
                                     ") reached: authenticated connections refused",
                                 "from " + peer_);
        close("");
        return;
    }
    authenticated_ = true;
    shared_->track(shared_from_this());
    X509* cert = SSL_get0_peer_certificate(stream_.native_handle());
    client_ = ClientIdentity::from_certificate(cert);
    last_activity_ = std::chrono::steady_clock::now();
    arm_timer(shared_->limits.idle_timeout);
    read_more();
}

// Frames are parsed from what one read brought (often several); a frame larger than a read chunk
// grows the buffer to exactly its size, which max_frame_bytes bounds.
constexpr size_t kReadChunk = 16384;

void Connection::read_more() {
    if (closed_) return;
    size_t room = std::max(kReadChunk, next_frame_ > in_used_ ? next_frame_ - in_used_ : 0);
    if (in_.size() < in_used_ + room) {
        in_.resize(in_used_ + room);
        track_capacity();
    }
    stream_.async_read_some(
        asio::buffer(in_.data() + in_used_, room),
        [self = shared_from_this()](const boost::system::error_code& ec, size_t got) {
            if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated)
                return self->end_of_input(); // close_notify, or a bare FIN
            if (ec)
                return self->close(self->next_frame_ ? "connection lost mid-frame: " + ec.message()
                                                     : ec.message());
            self->last_activity_ = std::chrono::steady_clock::now();
            self->in_used_ += got;
            self->process_input();
        });
}

// Answers every complete frame received, then reads on unless the connection is saturated (its
// remaining input then waits in in_ until replies are written).
void Connection::process_input() {
    size_t at = 0;
    batching_ = true;
    while (!closed_ && !saturated() && in_used_ - at >= protocol::kHeaderSize) {
        ByteView rest = ByteView(in_).subspan(at, in_used_ - at);
        protocol::Header header = protocol::decode_header(rest);
        next_frame_ = protocol::kHeaderSize + header.body_length;
        if (next_frame_ > shared_->limits.max_frame_bytes) {
            // The frame cannot be read within our limits: there is no safe place to resume, so
            // the connection goes, and only this one.
            close("frame of " + std::to_string(next_frame_) + " bytes exceeds max_frame_bytes " +
                  std::to_string(shared_->limits.max_frame_bytes));
            break;
        }
        if (rest.size() < next_frame_) break;
        on_frame(header, rest.subspan(protocol::kHeaderSize, header.body_length));
        at += next_frame_;
        next_frame_ = 0;
    }
    batching_ = false;
    if (at > 0) {
        std::memmove(in_.data(), in_.data() + at, in_used_ - at);
        in_used_ -= at;
    }
    flush_replies();
    release_idle_buffers(); // no read is pending here: in_ may be reallocated
    if (closed_) return;
    if (saturated())
        reading_paused_ = true;
    else if (!input_ended_)
        read_more();
}

void Connection::on_frame(const protocol::Header& header, ByteView body) {
    auto start = std::chrono::steady_clock::now();
    size_t in_flight = shared_->operations_in_flight.load();
    size_t frame_bytes = protocol::kHeaderSize + body.size();
    if (header.major != protocol::kMajorVersion)
        return reply(header.id, version_mismatch(header.major), start, in_flight);
    try {
        dispatch(header.id, protocol::decode_body(body), frame_bytes);
    } catch (const FormatError& e) {
        reply(header.id, format_error(e.what()), start, in_flight);
    }
}

// Back-pressure: a connection stops being read while its requests in flight plus replies not yet
// written reach max_in_flight_per_connection, or their bytes max_buffered_bytes_per_connection,
// so a client that sends without reading cannot make the server buffer without bound.
bool Connection::saturated() const {
    return in_flight_ + replies_unwritten_ >= shared_->limits.max_in_flight_per_connection ||
           buffered_ >= shared_->limits.max_buffered_bytes_per_connection;
}

void Connection::account(size_t add, size_t remove) {
    buffered_ = buffered_ + add - remove;
    shared_->buffered_bytes += add - remove; // unsigned: wraps correctly when remove > add
}

// The client sent all it will send: answer everything already read, then close.
void Connection::end_of_input() {
    input_ended_ = true;
    close_when_drained();
}

void Connection::close_when_drained() {
    if (input_ended_ && in_flight_ == 0 && replies_unwritten_ == 0 && !reading_paused_) close("");
}

void Connection::resume_reading() {
    if (reading_paused_ && !batching_ && !closed_ && !saturated()) {
        reading_paused_ = false;
        process_input(); // what already arrived first, even after the client half-closed
    }
    close_when_drained();
}

// Answers Overloaded at once: the request is shed, never queued.
void Connection::shed(uint32_t id, const protocol::Operation& request, const Resolution& resolved,
                      std::string why, const char* metric_reason) {
    shared_->metrics.count_refusal(metric_reason);
    // Named as an answered request is (Resolution::logged_name): never a name matching no key.
    if (!resolved.key && !request.key_name.empty())
        why += " (for a name that matches no key)";
    else if (resolved.key && !resolved.allowed)
        why += " (for a key this client cannot use)";
    Outcome shed = error_outcome(protocol::ErrorCode::Overloaded, std::move(why));
    shed.operation = operation_name(request);
    shed.key_name = resolved.logged_name(request);
    reply(id, shed, std::chrono::steady_clock::now(), shared_->operations_in_flight.load());
}

void Connection::dispatch(uint32_t id, protocol::Operation request, size_t frame_bytes) {
    auto handler = shared_->handler();
    // The key and the client's policy on it, once: rate limits, the choice of thread and the
    // answer all use this.
    Resolution resolved = handler->resolve(client_, request);
    if (shared_->buffered_bytes.load() >= shared_->limits.max_buffered_bytes) {
        std::string why = "server-wide buffer budget max_buffered_bytes (" +
                          std::to_string(shared_->limits.max_buffered_bytes) + ") is full";
        shared_->overload_log.note(why, "request from " + peer_);
        return shed(id, request, resolved, std::move(why), "overloaded");
    }
    // Fair share: over its client's or key's rate or in-flight limit. With no limit configured
    // nothing is looked up.
    std::string why;
    std::string key = shared_->rate_limiter.active() ? resolved.usable_name() : "";
    auto ticket = shared_->rate_limiter.admit(client_, key, std::chrono::steady_clock::now(), why);
    if (!ticket) return shed(id, request, resolved, std::move(why), "rate_limited");
    ++in_flight_;
    account(frame_bytes, 0);
    // How many operations the whole server has in flight as this one starts (this one included):
    // the access log shows it, so concurrency is observable without timing anything.
    size_t server_in_flight = ++shared_->operations_in_flight;
    auto start = std::chrono::steady_clock::now();
    // The answer comes back through the connection's strand, which owns the stream: at once when
    // the handler answers inline here, else posted from the thread that answered.
    auto done = [self = shared_from_this(), id, start, server_in_flight, frame_bytes,
                 ticket = *ticket](Outcome outcome) {
        RateLimiter::release(ticket);
        asio::dispatch(self->stream_.get_executor(), [self, id, start, server_in_flight,
                                                      frame_bytes, outcome = std::move(outcome)] {
            self->finish(id, outcome, start, server_in_flight, frame_bytes);
        });
    };
    // An EC or Ed25519 signature costs less than a hop to another thread and back: it runs here.
    // RSA runs on the pool, in parallel, so one slow signature does not hold up a connection's
    // cheap ones.
    if (handler->runs_inline(request, resolved))
        return handler->answer(client_, request, resolved, std::move(done));
    asio::post(shared_->io, [self = shared_from_this(), handler, request = std::move(request),
                             resolved = std::move(resolved), done = std::move(done)]() mutable {
        handler->answer(self->client_, request, resolved, std::move(done));
    });
}

void Connection::finish(uint32_t id, const Outcome& outcome,
                        std::chrono::steady_clock::time_point start, size_t server_in_flight,
                        size_t frame_bytes) {
    --in_flight_;
    account(0, frame_bytes);
    --shared_->operations_in_flight;
    reply(id, outcome, start, server_in_flight);
    resume_reading();
}

void Connection::reply(uint32_t id, const Outcome& outcome,
                       std::chrono::steady_clock::time_point start, size_t in_flight) {
    auto latency = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
    shared_->log.format(log_batch_, id, client_.display(), peer_, outcome, latency, in_flight);
    shared_->metrics.observe(outcome, latency);
    if (closed_) return write_log();
    size_t before = out_.size();
    protocol::encode_into(out_, id, outcome.response);
    account(out_.size() - before, 0);
    ++replies_unwritten_;
    if (!batching_) flush_replies();
}

// Every reply's access-log line is written before the reply can leave: what an edge obtained is
// always on record. The lines of one batch go out in one write.
void Connection::write_log() {
    if (log_batch_.empty()) return;
    shared_->log.write(log_batch_);
    log_batch_.clear();
}

// Starts one TLS write with every reply ready now, unless one is in progress (its completion
// sends what gathered meanwhile).
void Connection::flush_replies() {
    track_capacity(); // replies grew out_ and log_batch_
    write_log();
    if (writing_in_progress_ || out_.empty() || closed_) return;
    writing_.swap(out_);
    replies_writing_ = replies_unwritten_;
    writing_in_progress_ = true;
    asio::async_write(stream_, asio::buffer(writing_),
                      [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                          self->writing_in_progress_ = false;
                          if (ec) return self->close("write failed: " + ec.message());
                          self->account(0, self->writing_.size());
                          self->replies_unwritten_ -= self->replies_writing_;
                          self->replies_writing_ = 0;
                          self->writing_.clear();
                          self->flush_replies();
                          self->release_idle_buffers();
                          self->resume_reading();
                      });
}

// A burst of pipelined requests grows in_ to a frame, and out_ and writing_ up to the
// per-connection byte budget; std::vector keeps its largest capacity. What is beyond a steady
// connection's needs (one read chunk; replies of one batch) is given back once unused, so an idle
// connection holds tens of KiB, not the peak of its busiest moment.
constexpr size_t kKeepBytes = 16384;

void Connection::release_idle_buffers() {
    auto release = [](auto& buffer) {
        if (buffer.empty() && buffer.capacity() > kKeepBytes)
            std::decay_t<decltype(buffer)>().swap(buffer);
    };
    release(out_);
    release(log_batch_);
    if (!writing_in_progress_) release(writing_);
    // in_ keeps one read chunk: when empty, or when a large frame no longer waits in it.
    bool grown = in_.capacity() > kReadChunk;
    if (grown && next_frame_ <= kReadChunk &&
        (in_used_ == 0 || (in_used_ <= kReadChunk && in_.capacity() > 4 * kReadChunk))) {
        Bytes smaller(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(in_used_));
        smaller.resize(kReadChunk);
        in_.swap(smaller);
    }
    track_capacity();
}

void Connection::track_capacity() {
    size_t now = in_.capacity() + out_.capacity() + writing_.capacity() + log_batch_.capacity();
    shared_->buffer_capacity += now - capacity_; // unsigned: wraps correctly when it shrank
    capacity_ = now;
}

void Connection::arm_timer(std::chrono::milliseconds after) {
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec) self->on_timeout();
    });
}

void Connection::on_timeout() {
    if (!handshake_done_) {
        shared_->metrics.count_refusal("handshake_timeout");
        shared_->handshake_failures.note("timed out", "from " + peer_);
        return close("");
    }
    if (in_flight_ > 0 || replies_unwritten_ > 0) return arm_timer(shared_->limits.idle_timeout);
    // Reads move last_activity_ instead of re-arming the timer for every frame.
    auto idle = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - last_activity_);
    if (idle < shared_->limits.idle_timeout) return arm_timer(shared_->limits.idle_timeout - idle);
    log_line(Level::Info, "connection from " + peer_ + " closed: idle timeout");
    close("");
}

void Connection::close(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    write_log();
    if (!why.empty()) log_line(Level::Warn, "connection from " + peer_ + " closed: " + why);
    boost::system::error_code ignored;
    timer_.cancel();
    stream_.lowest_layer().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.lowest_layer().close(ignored);
}

} // namespace keyless::keyserver
