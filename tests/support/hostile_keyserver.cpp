#include "hostile_keyserver.hpp"

#include "keyserver_fixture.hpp"
#include "ossl.hpp"
#include "protocol.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace keyless::test {

FloodingKeyserver::FloodingKeyserver(uint16_t port, size_t max_bytes_per_connection)
    : max_bytes_(max_bytes_per_connection) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 16) != 0)
        throw std::runtime_error("flooding keyserver: cannot listen on port " +
                                 std::to_string(port));
    thread_ = std::thread([this] { run(); });
}

FloodingKeyserver::~FloodingKeyserver() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
}

void FloodingKeyserver::run() {
    ossl::SslCtx ctx(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_use_certificate_chain_file(ctx.get(), pki("keyserver.crt").c_str());
    SSL_CTX_use_PrivateKey_file(ctx.get(), pki("keyserver.key").c_str(), SSL_FILETYPE_PEM);
    // Unknown ids, valid frames: what a broken server (or one answering someone else) sends.
    Bytes flood;
    for (uint32_t id = 0x7F000000; flood.size() < 64 * 1024; ++id) {
        Bytes frame = protocol::encode(id, protocol::Operation::make(protocol::Opcode::Pong));
        flood.insert(flood.end(), frame.begin(), frame.end());
    }
    while (!stop_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) continue;
        ++connections_;
        timeval tv{2, 0}; // a peer that stops reading ends the flood after 2 s
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ossl::Ssl ssl(SSL_new(ctx.get()));
        SSL_set_fd(ssl.get(), fd);
        if (SSL_accept(ssl.get()) == 1) {
            for (size_t sent = 0; !stop_ && sent < max_bytes_; sent += flood.size()) {
                size_t written = 0;
                if (SSL_write_ex(ssl.get(), flood.data(), flood.size(), &written) != 1) break;
                sent_ += written;
            }
        }
        ssl.reset();
        ::close(fd);
    }
}

} // namespace keyless::test
