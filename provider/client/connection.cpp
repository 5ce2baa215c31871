#include "connection.hpp"

#include "socket_bio.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>

namespace keyless::client {

void Connection::start_connect() {
    auto failed = [&](std::string why) {
        connect_error = std::move(why);
        connect_deadline = std::chrono::steady_clock::now();
    };
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    // Numeric only, so this never blocks: a name's address comes from the DNS cache, looked up
    // off the I/O thread (resolver.hpp); a URI's IP literal is used as it is.
    hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
    const std::string& target = endpoint.address.empty() ? endpoint.host : endpoint.address;
    int rc = ::getaddrinfo(target.c_str(), std::to_string(endpoint.port).c_str(), &hints, &res);
    if (rc != 0) return failed("no address for " + target + ": " + gai_strerror(rc));
    int s = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s >= 0) {
        int one = 1;
        ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (::connect(s, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS) {
            failed(std::strerror(errno));
            ::close(s);
            s = -1;
        }
    } else {
        failed(std::strerror(errno));
    }
    ::freeaddrinfo(res);
    fd = s;
}

std::optional<ConnectionError> Connection::advance(SSL_CTX* tls, bool& became_ready) {
    became_ready = false;
    if (state == State::Connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0)
            return ConnectionError{Failure::Unreachable,
                                   std::string("cannot connect: ") + std::strerror(err)};
        ssl.reset(SSL_new(tls));
        ossl::Bio socket = ssl ? socket_bio(fd) : nullptr;
        if (!socket)
            return ConnectionError{Failure::Unreachable,
                                   "cannot start TLS: " + ossl::last_error("out of memory")};
        SSL_set_bio(ssl.get(), socket.get(), socket.get()); // one reference, for both directions
        (void)socket.release();                             // the SSL owns it now
        // A reply's TLS record comes in one read (a header read and a body read without).
        SSL_set_read_ahead(ssl.get(), 1);
        // The keyserver's certificate must name the host we dialled: an IP address, or a DNS
        // name (also sent as SNI). A failure here must stop the connection, never skip the check.
        X509_VERIFY_PARAM* vp = SSL_get0_param(ssl.get());
        if (X509_VERIFY_PARAM_set1_ip_asc(vp, endpoint.host.c_str()) != 1) {
            ERR_clear_error();
            if (SSL_set_tlsext_host_name(ssl.get(), endpoint.host.c_str()) != 1 ||
                X509_VERIFY_PARAM_set1_host(vp, endpoint.host.c_str(), 0) != 1)
                return ConnectionError{Failure::Unreachable, "cannot check the keyserver's name '" +
                                                                 endpoint.host +
                                                                 "': " + ossl::last_error()};
        }
        state = State::Handshaking;
    }
    if (state == State::Handshaking) {
        ERR_clear_error();
        int rc = SSL_connect(ssl.get());
        if (rc != 1) {
            int e = SSL_get_error(ssl.get(), rc);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                want_write = e == SSL_ERROR_WANT_WRITE;
                return std::nullopt;
            }
            std::string why = "mTLS handshake with keyserver failed: ";
            long verify = SSL_get_verify_result(ssl.get());
            if (verify != X509_V_OK)
                why += std::string("server certificate: ") + X509_verify_cert_error_string(verify);
            else
                why += ossl::last_error("connection closed during handshake");
            return ConnectionError{Failure::TlsFailure, why};
        }
        want_write = false;
        state = State::Ready;
        became_ready = true;
    }
    return std::nullopt;
}

void Connection::queue(const std::shared_ptr<Call>& call) {
    uint32_t id = next_id++;
    protocol::encode_into(out, id, call->sent_form());
    call->sent_at = std::chrono::steady_clock::now();
    pending[id] = call;
}

std::optional<ConnectionError> Connection::flush() {
    want_write = false;
    while (!out.empty()) {
        size_t written = 0;
        ERR_clear_error();
        int rc = SSL_write_ex(ssl.get(), out.data(), out.size(), &written);
        if (rc == 1) {
            out.erase(out.begin(), out.begin() + static_cast<long>(written));
            continue;
        }
        int e = SSL_get_error(ssl.get(), rc);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            want_write = true;
            return std::nullopt;
        }
        return ConnectionError{Failure::Unreachable, "keyserver connection lost while sending"};
    }
    return std::nullopt;
}

std::optional<ConnectionError> Connection::read(
    const std::function<void(const std::shared_ptr<Call>&, protocol::Operation)>& on_reply) {
    constexpr size_t kMaxReadPerTurn = 1 << 20;
    uint8_t buf[16384];
    buffered = false;
    for (size_t turn = 0;;) {
        if (turn >= kMaxReadPerTurn) {
            buffered = SSL_has_pending(ssl.get()) == 1; // the core comes back for it
            break;
        }
        size_t got = 0;
        ERR_clear_error();
        int rc = SSL_read_ex(ssl.get(), buf, sizeof buf, &got);
        if (rc != 1) {
            int e = SSL_get_error(ssl.get(), rc);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
            return ConnectionError{Failure::Unreachable,
                                   e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL
                                       ? "keyserver closed the connection"
                                       : "keyserver connection failed: " + ossl::last_error()};
        }
        turn += got;
        in.insert(in.end(), buf, buf + got);
        size_t at = 0;
        while (in.size() - at >= protocol::kHeaderSize) {
            ByteView rest = ByteView(in).subspan(at);
            auto h = protocol::decode_header(rest);
            size_t frame = protocol::kHeaderSize + h.body_length;
            if (rest.size() < frame) break;
            protocol::Operation op;
            try {
                op = protocol::decode_body(rest.subspan(protocol::kHeaderSize, h.body_length));
            } catch (const protocol::FormatError& e) {
                return ConnectionError{Failure::Protocol,
                                       "unreadable reply from keyserver " + name + ": " + e.what()};
            }
            at += frame;
            auto it = pending.find(h.id);
            if (it != pending.end()) {
                auto call = it->second;
                pending.erase(it);
                on_reply(call, std::move(op));
                if (dead) return std::nullopt; // on_reply failed this connection meanwhile
            } else if (abandoned.erase(h.id) == 0) {
                return ConnectionError{Failure::Protocol,
                                       "keyserver " + name + " answered request id " +
                                           std::to_string(h.id) +
                                           ", which this connection never sent or already has "
                                           "the answer to"};
            } // else: its caller already timed out
        }
        in.erase(in.begin(), in.begin() + static_cast<long>(at));
        // What OpenSSL read ahead is invisible to poll(): read on while it holds any. With
        // replies still due, read on until the socket is empty too: those that came meanwhile
        // cost no poll() turn. With none due, stop (no read only to hear EAGAIN).
        if (SSL_has_pending(ssl.get()) != 1 && pending.empty()) break;
    }
    return std::nullopt;
}

void Connection::close() {
    ssl.reset();
    if (fd >= 0) ::close(fd);
    fd = -1;
}

} // namespace keyless::client
