#include "observe/admin.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <chrono>
#include <string_view>

namespace keyless::keyserver {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// Beast's string_view is Boost's on Boost 1.74: convert explicitly.
std::string_view view(beast::string_view v) {
    return {v.data(), v.size()};
}

using Digest = std::array<unsigned char, EVP_MAX_MD_SIZE>;

// SHA-256 of `text`: tokens are compared as digests so that the comparison takes the same time
// whatever the length or the first differing byte of what a client sent.
Digest sha256(std::string_view text) {
    Digest d{};
    unsigned int len = 0;
    if (!EVP_Digest(text.data(), text.size(), d.data(), &len, EVP_sha256(), nullptr))
        throw std::runtime_error("SHA-256 is not available");
    return d;
}

bool same_secret(std::string_view given, std::string_view expected) {
    Digest a = sha256(given), b = sha256(expected);
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// The Host values that name this listener itself: its address and port as a client typed it
// (127.0.0.1:2406, [::1]:2406, localhost:2406). A DNS-rebinding page reaches the listener
// under its own name (evil.example:2406), which is refused.
bool names_this_listener(std::string_view host, const tcp::endpoint& local) {
    std::string port = ":" + std::to_string(local.port());
    const auto& a = local.address();
    std::string addr = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
    if (host == addr + port) return true;
    return a.is_loopback() && host == "localhost" + port;
}

class AdminSession : public std::enable_shared_from_this<AdminSession> {
  public:
    AdminSession(tcp::socket socket, std::shared_ptr<const std::string> token,
                 std::shared_ptr<const AdminActions> actions)
        : stream_(std::move(socket)), token_(std::move(token)), actions_(std::move(actions)) {
        boost::system::error_code ec;
        local_ = stream_.socket().local_endpoint(ec);
    }

    void start() {
        parser_.body_limit(4096);
        parser_.header_limit(8192);
        stream_.expires_after(std::chrono::seconds(5));
        http::async_read(stream_, buffer_, parser_,
                         [self = shared_from_this()](beast::error_code ec, size_t) {
                             if (!ec) return self->respond();
                             if (ec == http::error::body_limit || ec == http::error::header_limit)
                                 self->send({413, "text/plain; charset=utf-8",
                                             "request too large (4 KiB body, 8 KiB headers)\n"},
                                            false);
                         });
    }

  private:
    AdminResponse route(const http::request<http::string_body>& req) const {
        // A browser marks what a page sends with Origin (every POST, every cross-origin
        // fetch); monitoring and operators' tools never do. Refused before anything runs.
        if (auto origin = req.find(http::field::origin); origin != req.end())
            return {403, "text/plain; charset=utf-8",
                    "requests from a web page (Origin: " + std::string(origin->value()) +
                        ") are refused by the admin listener\n"};
        std::string target(req.target());
        bool authorized = !token_->empty() &&
                          same_secret(view(req[http::field::authorization]), "Bearer " + *token_);
        if (!token_->empty()) {
            if (!authorized && target != "/healthz")
                return {401, "text/plain; charset=utf-8", "missing or wrong bearer token\n"};
        } else if (auto host = req.find(http::field::host);
                   host != req.end() && !names_this_listener(view(host->value()), local_)) {
            // Without a token only the listener's own name is served: a rebinding DNS name
            // cannot turn a browser into a reader of /keys and /metrics.
            return {403, "text/plain; charset=utf-8",
                    "Host '" + std::string(host->value()) +
                        "' is not this admin listener's address (use " +
                        std::string(local_.address().is_v6() ? "[" : "") +
                        local_.address().to_string() + (local_.address().is_v6() ? "]" : "") + ":" +
                        std::to_string(local_.port()) + ")\n"};
        }
        bool get = req.method() == http::verb::get || req.method() == http::verb::head;
        bool post = req.method() == http::verb::post;
        auto only = [](const char* method) {
            return AdminResponse{405, "text/plain; charset=utf-8",
                                 std::string("use ") + method + "\n"};
        };
        if (target == "/metrics") return get ? actions_->metrics() : only("GET");
        if (target == "/healthz")
            return get ? actions_->health(token_->empty() || authorized) : only("GET");
        if (target == "/keys") return get ? actions_->keys() : only("GET");
        bool changes = target == "/drain" || target == "/reload";
        if (changes && !post) return only("POST");
        // What changes the keyserver needs the token: any local user or process can reach a
        // loopback listener, and reading it is all they may do.
        if (changes && !authorized)
            return {403, "text/plain; charset=utf-8",
                    "POST " + target +
                        " needs the admin bearer token: set admin.token_file and send "
                        "'Authorization: Bearer TOKEN' (or signal the keyserver: SIGHUP reloads, "
                        "SIGTERM drains and stops)\n"};
        if (target == "/drain") return actions_->drain();
        if (target == "/reload") return actions_->reload();
        return {404, "text/plain; charset=utf-8",
                "not found: GET /metrics /healthz /keys, POST /drain /reload\n"};
    }

    void respond() {
        const auto& req = parser_.get();
        AdminResponse r;
        try {
            r = route(req);
        } catch (const std::exception& e) {
            r = {500, "text/plain; charset=utf-8", std::string(e.what()) + "\n"};
        }
        send(std::move(r), req.method() == http::verb::head);
    }

    void send(AdminResponse r, bool head) {
        response_.result(r.status);
        response_.version(11);
        response_.set(http::field::content_type, r.content_type);
        response_.set(http::field::connection, "close");
        response_.body() = head ? std::string() : std::move(r.body);
        response_.prepare_payload();
        http::async_write(stream_, response_,
                          [self = shared_from_this()](beast::error_code, size_t) {
                              beast::error_code ignored;
                              self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
                          });
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    http::request_parser<http::string_body> parser_;
    http::response<http::string_body> response_;
    std::shared_ptr<const std::string> token_;
    std::shared_ptr<const AdminActions> actions_;
    tcp::endpoint local_; // the address this request arrived on
};

} // namespace

AdminServer::AdminServer(asio::io_context& io, const tcp::endpoint& listen, std::string token,
                         AdminActions actions)
    : io_(io), acceptor_(io), retry_(io),
      token_(std::make_shared<const std::string>(std::move(token))),
      actions_(std::make_shared<const AdminActions>(std::move(actions))) {
    boost::system::error_code ec;
    acceptor_.open(listen.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(listen, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::runtime_error("admin listener " + listen.address().to_string() + ":" +
                                 std::to_string(listen.port()) + ": " + ec.message());
    accept();
}

void AdminServer::stop() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    retry_.cancel();
}

void AdminServer::accept() {
    acceptor_.async_accept(
        asio::make_strand(io_), [this](boost::system::error_code ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted) return;
            if (!ec) std::make_shared<AdminSession>(std::move(socket), token_, actions_)->start();
            accept();
        });
}

} // namespace keyless::keyserver
