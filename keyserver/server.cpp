#include "server.hpp"

#include "connection.hpp"

#include <charconv>
#include <iostream>

namespace keyless::keyserver {

asio::ssl::context make_server_tls_context(const Config& config) {
    asio::ssl::context ctx(asio::ssl::context::tls_server);
    SSL_CTX* native = ctx.native_handle();
    // TLS 1.3 preferred, 1.2 for gokeyless peers; nothing older.
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(native, "ECDHE+AESGCM:ECDHE+CHACHA20");
    SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    static const unsigned char session_context[] = "keyless-keyserver";
    SSL_CTX_set_session_id_context(native, session_context, sizeof session_context - 1);
    auto load = [](const char* what, const std::string& file, auto&& fn) {
        try {
            fn();
        } catch (const boost::system::system_error& e) {
            throw ConfigError(std::string(what) + " " + file + ": " + e.code().message());
        }
    };
    load("server certificate", config.cert_file,
         [&] { ctx.use_certificate_chain_file(config.cert_file); });
    load("server key", config.key_file,
         [&] { ctx.use_private_key_file(config.key_file, asio::ssl::context::pem); });
    if (SSL_CTX_check_private_key(native) != 1)
        throw ConfigError("server key " + config.key_file + " does not match certificate " +
                          config.cert_file);
    load("client CA", config.client_ca_file, [&] { ctx.load_verify_file(config.client_ca_file); });
    ctx.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    return ctx;
}

tcp::endpoint parse_listen_address(const std::string& text) {
    auto fail = [&](const std::string& why) {
        return ConfigError("listen address '" + text + "': " + why + " (expected IP:PORT)");
    };
    auto colon = text.rfind(':');
    if (colon == std::string::npos) throw fail("missing ':PORT'");
    std::string host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    unsigned port = 0;
    std::string_view p = std::string_view(text).substr(colon + 1);
    auto [ptr, err] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (p.empty() || err != std::errc() || ptr != p.data() + p.size() || port > 65535)
        throw fail("bad port");
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (ec) throw fail("host must be an IP address");
    return {addr, static_cast<uint16_t>(port)};
}

Server::Server(asio::io_context& io, asio::ssl::context& tls, const tcp::endpoint& listen,
               std::shared_ptr<ServerShared> shared)
    : io_(io), tls_(tls), acceptor_(io), shared_(std::move(shared)) {
    acceptor_.open(listen.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(listen);
    acceptor_.listen(asio::socket_base::max_listen_connections);
}

void Server::start() {
    accept();
}

void Server::stop() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
}

void Server::accept() {
    acceptor_.async_accept(
        asio::make_strand(io_), [this](const boost::system::error_code& ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted) return;
            if (!ec) {
                if (shared_->connections.load() >= shared_->limits.max_connections) {
                    std::cerr << "keyserver: refusing connection: max_connections ("
                              << shared_->limits.max_connections << ") reached\n";
                    boost::system::error_code ignored;
                    socket.close(ignored);
                } else {
                    socket.set_option(tcp::no_delay(true));
                    std::make_shared<Connection>(std::move(socket), tls_, shared_)->start();
                }
            }
            accept();
        });
}

} // namespace keyless::keyserver
