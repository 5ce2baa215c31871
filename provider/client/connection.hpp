// One multiplexed mTLS connection to a keyserver endpoint: a non-blocking socket, the TLS
// handshake (the keyserver's certificate must name the host dialled), requests framed out under
// ids, replies read and matched to the calls waiting for them. No routing and no deadlines: the
// I/O core (io_core.hpp) decides where requests go and what a failure means.
#pragma once

#include "call.hpp"
#include "ossl.hpp"

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

namespace keyless::client {

struct ConnectionError {
    Failure failure;
    std::string why;
};

struct Connection {
    enum class State { Connecting, Handshaking, Ready };
    Endpoint endpoint;
    std::string name;    // "host:port", or "host:port (address)" for a name's address
    uint64_t serial = 0; // unique per connection made by a core
    int fd = -1;
    ossl::Ssl ssl;
    State state = State::Connecting;
    std::chrono::steady_clock::time_point connect_deadline;
    bool want_write = false; // TLS asked for POLLOUT
    Bytes out;
    Bytes in;
    uint32_t next_id = 1;
    std::map<uint32_t, std::shared_ptr<Call>> pending; // sent, awaiting a reply
    // When the keyserver last answered a request on this connection: a call that times out
    // after it was sent while others were answered is one slow key, not a dead keyserver.
    std::chrono::steady_clock::time_point last_reply;
    std::set<uint32_t> abandoned; // sent, timed out, reply not yet seen (the core bounds it)
    std::deque<std::shared_ptr<Call>> waiting; // queued until the handshake completes
    std::string connect_error;                 // set when the connect failed before any I/O
    bool dead = false;
    // A caller that wrote its own request reads the replies (io_core.hpp): the I/O thread does
    // not poll for them meanwhile.
    bool led = false;
    // OpenSSL holds bytes it read ahead, which poll() cannot see: read() stopped at its per-turn
    // bound. Whoever reads this connection reads again without waiting for the socket.
    bool buffered = false;

    // Starts a non-blocking connect to the endpoint's address (or host). A connect that fails at
    // once sets connect_error and makes the deadline now, so the core reports it on its turn.
    void start_connect();
    // Moves the connect and the TLS handshake on (after poll() said the socket is ready); an
    // error when either failed. `became_ready` is set when the handshake completed now.
    std::optional<ConnectionError> advance(SSL_CTX* tls, bool& became_ready);
    // Frames `call`'s request under a new id, to be written by flush().
    void queue(const std::shared_ptr<Call>& call);
    // Writes what is queued, as far as the socket takes it; an error when the connection is lost.
    std::optional<ConnectionError> flush();
    // Reads what the keyserver sent (at most 1 MiB a turn, so a flood cannot starve the other
    // connections or the timers) and hands each reply to `on_reply` with its call. Frames are
    // parsed as they arrive and consumed with one erase per read: the buffer never holds more
    // than one read and one partial frame (64 KiB at most). A closed or failed connection, an
    // unreadable frame, or a reply to a request it never sent (or that was already answered or
    // abandoned twice) is an error naming the keyserver.
    std::optional<ConnectionError>
    read(const std::function<void(const std::shared_ptr<Call>&, protocol::Operation)>& on_reply);
    // Closes the socket without a close_notify (the peer sees it close); the SSL is freed.
    void close();
};

} // namespace keyless::client
