#include "net/server.hpp"

#include "net/connection.hpp"
#include "observe/log.hpp"

#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include <sys/resource.h>

#include <cerrno>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <ctime>

namespace keyless::keyserver {

namespace {

// Says what is wrong with a file the keyserver must read, naming it: missing or unreadable.
void check_file(const std::string& what, const std::string& file) {
    if (::access(file.c_str(), F_OK) != 0)
        throw ConfigError(what + " " + file + ": missing (" + std::strerror(errno) + ")");
    if (::access(file.c_str(), R_OK) != 0)
        throw ConfigError(what + " " + file + ": unreadable by this user (" + std::strerror(errno) +
                          ")");
}

// Never prompts: an encrypted key file is an error, not a question on the terminal.
int no_passphrase(char*, int, int, void*) {
    return -1;
}

// The keyserver's own certificate chain and key: readable, PEM, matching, not expired.
void load_server_identity(SSL_CTX* native, const Config& config) {
    check_file("server certificate", config.cert_file);
    if (SSL_CTX_use_certificate_chain_file(native, config.cert_file.c_str()) != 1) {
        ERR_clear_error();
        throw ConfigError("server certificate " + config.cert_file +
                          ": not a PEM certificate chain");
    }
    X509* cert = SSL_CTX_get0_certificate(native);
    int64_t expires = not_after(cert);
    if (expires && expires < std::time(nullptr))
        throw ConfigError("server certificate " + config.cert_file + ": expired");
    check_file("server key", config.key_file);
    if (is_encrypted_pem(config.key_file))
        throw ConfigError("server key " + config.key_file +
                          ": encrypted; the keyserver needs it unencrypted (mode 600)");
    ossl::Bio bio(BIO_new_file(config.key_file.c_str(), "r"));
    ossl::Pkey key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr)
                       : nullptr);
    if (!key) {
        ERR_clear_error();
        throw ConfigError("server key " + config.key_file + ": not a PEM private key");
    }
    if (SSL_CTX_use_PrivateKey(native, key.get()) != 1 || SSL_CTX_check_private_key(native) != 1) {
        ERR_clear_error();
        throw ConfigError("server key " + config.key_file + " does not match certificate " +
                          config.cert_file);
    }
}

} // namespace

std::vector<std::string> tls_warnings(const Config& config) {
    std::vector<std::string> out;
    for (const auto& [label, expires] : certificate_expiry(config.cert_file, "server"))
        if (expires - std::time(nullptr) < 30 * 86400)
            out.push_back("server certificate " + config.cert_file + " (" + label +
                          ") expires within 30 days");
    for (const auto& [label, expires] : certificate_expiry(config.client_ca_file, "client_ca")) {
        if (expires < std::time(nullptr))
            out.push_back("client CA " + config.client_ca_file + " (" + label + ") has expired");
        else if (expires - std::time(nullptr) < 30 * 86400)
            out.push_back("client CA " + config.client_ca_file + " (" + label +
                          ") expires within 30 days");
    }
    return out;
}

namespace {

// OpenSSL decodes a certificate's extensions (its key identifiers among them) on first use, and
// concurrent verifications of client certificates race on that first decoding of the CA they
// share (OpenSSL 3.0: ThreadSanitizer saw one handshake write the CA's key identifier while
// another compared it). Decoded here, on one thread, before any handshake sees the trust anchors.
void decode_trust_anchors(SSL_CTX* native) {
    STACK_OF(X509)* certs = X509_STORE_get1_all_certs(SSL_CTX_get_cert_store(native));
    for (int i = 0; i < sk_X509_num(certs); ++i)
        (void)X509_check_purpose(sk_X509_value(certs, i), -1, 0);
    sk_X509_pop_free(certs, X509_free);
}

} // namespace

std::shared_ptr<asio::ssl::context> make_server_tls_context(const Config& config) {
    auto tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    asio::ssl::context& ctx = *tls;
    SSL_CTX* native = ctx.native_handle();
    // TLS 1.3 preferred, 1.2 for gokeyless peers; nothing older.
    static const unsigned char session_context[] = "keyless-keyserver";
    if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(native, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1 ||
        SSL_CTX_set_session_id_context(native, session_context, sizeof session_context - 1) != 1)
        throw ConfigError("this OpenSSL refuses the keyserver's TLS settings (TLS 1.2 minimum, "
                          "ECDHE+AESGCM:ECDHE+CHACHA20): " +
                          ossl::last_error());
    SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    load_server_identity(native, config);
    check_file("client CA", config.client_ca_file);
    if (SSL_CTX_load_verify_locations(native, config.client_ca_file.c_str(), nullptr) != 1) {
        ERR_clear_error();
        throw ConfigError("client CA " + config.client_ca_file +
                          ": no PEM CA certificate could be read from it");
    }
    decode_trust_anchors(native);
    if (!config.crl_file.empty()) {
        check_file("CRL", config.crl_file);
        ossl::Bio bio(BIO_new_file(config.crl_file.c_str(), "r"));
        X509_STORE* store = SSL_CTX_get_cert_store(native);
        int loaded = 0;
        while (bio) {
            X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr);
            if (!crl) break;
            loaded += X509_STORE_add_crl(store, crl);
            X509_CRL_free(crl);
        }
        ERR_clear_error(); // the end of the file reads as an error
        if (loaded == 0)
            throw ConfigError("CRL " + config.crl_file + ": no PEM X509 CRL could be read");
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    }
    ctx.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    return tls;
}

std::string untrusted_because(asio::ssl::context& tls, X509* leaf, STACK_OF(X509) * chain) {
    if (!leaf) return "no client certificate";
    std::unique_ptr<X509_STORE_CTX, ossl::Deleter<X509_STORE_CTX_free>> vctx(X509_STORE_CTX_new());
    if (!vctx ||
        !X509_STORE_CTX_init(vctx.get(), SSL_CTX_get_cert_store(tls.native_handle()), leaf, chain))
        return "cannot verify: " + ossl::last_error();
    X509_STORE_CTX_set_purpose(vctx.get(), X509_PURPOSE_SSL_CLIENT);
    if (X509_verify_cert(vctx.get()) == 1) return {};
    std::string why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx.get()));
    ERR_clear_error();
    return why;
}

void ServerShared::track(const std::shared_ptr<Connection>& c) {
    std::lock_guard lock(mutex_);
    tracked_[c.get()] = c;
}

void ServerShared::untrack(const Connection* c) {
    std::lock_guard lock(mutex_);
    tracked_.erase(c);
}

std::vector<std::shared_ptr<Connection>> ServerShared::tracked() const {
    std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<Connection>> out;
    for (const auto& [raw, weak] : tracked_)
        if (auto c = weak.lock()) out.push_back(std::move(c));
    return out;
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

void RateLimitedLog::note(const std::string& reason, const std::string& detail) {
    std::lock_guard lock(mutex_);
    auto now = std::chrono::steady_clock::now();
    std::string key = tallies_.size() < 64 || tallies_.count(reason) ? reason : "other reasons";
    Tally& t = tallies_[key];
    ++t.unprinted;
    if (t.last_print != std::chrono::steady_clock::time_point{} && now - t.last_print < interval_)
        return;
    std::string line = what_ + ": " + key + (detail.empty() ? "" : " (" + detail + ")");
    if (t.unprinted > 1)
        line += "; " + std::to_string(t.unprinted) + " times in the last " +
                std::to_string(interval_.count()) + " s";
    log_line(Level::Warn, line);
    t.unprinted = 0;
    t.last_print = now;
}

std::vector<std::string> raise_fd_limit(size_t connections) {
    std::vector<std::string> said;
    struct rlimit lim {};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return said;
    if (lim.rlim_cur < lim.rlim_max) {
        rlim_t before = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &lim) == 0)
            said.push_back("raised the open-file limit from " + std::to_string(before) + " to " +
                           std::to_string(lim.rlim_cur));
        else
            lim.rlim_cur = before;
    }
    const rlim_t needed = connections + 64; // listener, logs, key files, the process's own
    if (lim.rlim_cur < needed)
        said.push_back("the open-file limit " + std::to_string(lim.rlim_cur) +
                       " is below what max_connections + max_handshaking " +
                       std::to_string(connections) + " need (" + std::to_string(needed) +
                       "): raise it (systemd LimitNOFILE=, ulimit -n) or lower those limits");
    return said;
}

Server::Server(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls,
               const tcp::endpoint& listen, std::shared_ptr<ServerShared> shared)
    : io_(io), strand_(asio::make_strand(io)), tls_(std::move(tls)), acceptor_(strand_),
      accept_pause_(strand_), shared_(std::move(shared)) {
    acceptor_.open(listen.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(listen);
    acceptor_.listen(asio::socket_base::max_listen_connections);
}

void Server::start() {
    accept();
}

void Server::replace_tls(std::shared_ptr<asio::ssl::context> tls) {
    // On the acceptor's strand, where tls_ is read, so no accept sees half a swap.
    asio::post(strand_, [this, tls] {
        tls_ = tls;
        for (auto& c : shared_->tracked())
            c->recheck_client(tls);
    });
}

void Server::stop() {
    // From the signal handler's or the admin listener's thread: onto the acceptor's strand.
    asio::post(strand_, [this] {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
        accept_pause_.cancel();
    });
}

void Server::accept() {
    acceptor_.async_accept(
        asio::make_strand(io_), [this](const boost::system::error_code& ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted) return;
            if (ec == asio::error::no_descriptors || ec.value() == ENFILE ||
                ec == asio::error::no_buffer_space || ec == asio::error::no_memory)
                return pause_accepting(ec);
            if (!ec) admit(std::move(socket));
            accept();
        });
}

// A new connection enters the handshake budget; the oldest handshakes make room if it is full, so
// connections held open without a certificate cannot lock edges out.
void Server::admit(tcp::socket socket) {
    boost::system::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    auto conn = std::make_shared<Connection>(std::move(socket), tls_, shared_);
    std::vector<std::weak_ptr<Connection>> evicted;
    auto ticket = shared_->handshakes.admit(conn->source(), conn, evicted);
    for (auto& old : evicted) {
        shared_->metrics.count_refusal("handshake_evicted");
        if (auto c = old.lock()) c->evict();
    }
    if (!evicted.empty())
        shared_->budget_log.note("max_handshaking (" +
                                     std::to_string(shared_->limits.max_handshaking) +
                                     ") reached: the oldest handshakes were closed",
                                 std::to_string(evicted.size()) + " just now");
    if (!ticket) {
        shared_->metrics.count_refusal("handshake_per_source");
        shared_->budget_log.note("max_handshaking_per_source (" +
                                     std::to_string(shared_->limits.max_handshaking_per_source) +
                                     ") reached: new connections refused",
                                 "from " + conn->source());
        conn->refuse();
        return;
    }
    conn->start(*ticket);
}

// Retrying a failed accept at once spins: the pending connection stays in the backlog and fails
// again. Wait a little instead (connections closing meanwhile free descriptors), say so once per
// interval, and keep the backlog for when descriptors are back.
void Server::pause_accepting(const boost::system::error_code& why) {
    constexpr auto kPause = std::chrono::milliseconds(100);
    shared_->metrics.count_refusal("out_of_descriptors");
    fd_log_.note(why.message(),
                 "accepting paused for " + std::to_string(kPause.count()) + " ms at a time");
    accept_pause_.expires_after(kPause);
    accept_pause_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && acceptor_.is_open()) accept();
    });
}

} // namespace keyless::keyserver
