#include "test_client.hpp"

#include "ossl.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace keyless::test {

struct TestClient::State {
    int fd = -1;
    ossl::SslCtx ctx;
    ossl::Ssl ssl;
    ~State() {
        ssl.reset();
        if (fd >= 0) ::close(fd);
    }
};

TestClient::TestClient(const ClientOptions& o) : state_(std::make_unique<State>()) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(o.host.c_str(), std::to_string(o.port).c_str(), &hints, &res) != 0)
        throw std::runtime_error("cannot resolve " + o.host);
    state_->fd = ::socket(res->ai_family, SOCK_STREAM, 0);
    timeval tv{o.timeout_ms / 1000, (o.timeout_ms % 1000) * 1000};
    setsockopt(state_->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(state_->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (o.receive_buffer > 0)
        setsockopt(state_->fd, SOL_SOCKET, SO_RCVBUF, &o.receive_buffer, sizeof o.receive_buffer);
    int one = 1;
    setsockopt(state_->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = ::connect(state_->fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0) throw std::runtime_error("cannot connect to port " + std::to_string(o.port));

    state_->ctx.reset(SSL_CTX_new(TLS_client_method()));
    SSL_CTX* ctx = state_->ctx.get();
    if (!o.cert.empty() && (SSL_CTX_use_certificate_chain_file(ctx, o.cert.c_str()) != 1 ||
                            SSL_CTX_use_PrivateKey_file(ctx, o.key.c_str(), SSL_FILETYPE_PEM) != 1))
        throw std::runtime_error("cannot load client certificate: " + ossl::last_error());
    if (SSL_CTX_load_verify_locations(ctx, o.ca.c_str(), nullptr) != 1)
        throw std::runtime_error("cannot load CA: " + ossl::last_error());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    state_->ssl.reset(SSL_new(ctx));
    SSL_set_fd(state_->ssl.get(), state_->fd);
    // The keyserver's name or address must be in its certificate (SSL_set1_host is deprecated
    // from OpenSSL 4.0 on; the verify parameters work on every version).
    X509_VERIFY_PARAM* vp = SSL_get0_param(state_->ssl.get());
    if (X509_VERIFY_PARAM_set1_ip_asc(vp, o.host.c_str()) != 1 &&
        X509_VERIFY_PARAM_set1_host(vp, o.host.c_str(), 0) != 1)
        throw std::runtime_error("cannot set the name to verify: " + ossl::last_error());
    ERR_clear_error();
    if (SSL_connect(state_->ssl.get()) != 1)
        throw std::runtime_error("TLS handshake failed: " + ossl::last_error("connection closed"));
}

TestClient::~TestClient() = default;

void TestClient::send_raw(ByteView bytes) {
    size_t written = 0;
    if (SSL_write_ex(state_->ssl.get(), bytes.data(), bytes.size(), &written) != 1 ||
        written != bytes.size())
        throw std::runtime_error("write failed: " + ossl::last_error("connection closed"));
}

void TestClient::close_write(bool close_notify) {
    if (close_notify) SSL_shutdown(state_->ssl.get()); // sends close_notify, keeps reading
    ::shutdown(state_->fd, SHUT_WR);
}

void TestClient::send(uint32_t id, const protocol::Operation& op) {
    send_raw(protocol::encode(id, op));
}

uint32_t TestClient::send(const protocol::Operation& op) {
    uint32_t id = next_id_++;
    send(id, op);
    return id;
}

bool TestClient::read_exact(uint8_t* out, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t r = 0;
        if (SSL_read_ex(state_->ssl.get(), out + got, n - got, &r) != 1) {
            ERR_clear_error();
            return false;
        }
        got += r;
    }
    return true;
}

std::optional<std::pair<uint32_t, protocol::Operation>> TestClient::receive() {
    std::array<uint8_t, protocol::kHeaderSize> header{};
    if (!read_exact(header.data(), header.size())) return std::nullopt;
    auto h = protocol::decode_header(header);
    Bytes body(h.body_length);
    if (!read_exact(body.data(), body.size())) return std::nullopt;
    return std::make_pair(h.id, protocol::decode_body(body));
}

protocol::Operation TestClient::call(const protocol::Operation& op) {
    uint32_t id = send(op);
    auto reply = receive();
    if (!reply) throw std::runtime_error("connection closed by the keyserver");
    if (reply->first != id) throw std::runtime_error("response id does not match request id");
    return reply->second;
}

} // namespace keyless::test
