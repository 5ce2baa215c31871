// The mTLS listener: accepts connections, runs the handshake, and hands each connection frames
// to dispatch. Transport only: what a request means is the Dispatcher's business.
#pragma once

#include "access_log.hpp"
#include "config.hpp"
#include "dispatch.hpp"

#include <utility> // Boost 1.74's asio/awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <atomic>
#include <memory>
#include <mutex>

namespace keyless::keyserver {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// What every connection shares with the server.
class ServerShared {
  public:
    ServerShared(asio::io_context& io_context, Limits connection_limits, AccessLog& access_log,
                 std::shared_ptr<const RequestHandler> handler)
        : io(io_context), limits(connection_limits), log(access_log), handler_(std::move(handler)) {
    }

    std::shared_ptr<const RequestHandler> handler() const {
        std::lock_guard lock(mutex_);
        return handler_;
    }
    void replace_handler(std::shared_ptr<const RequestHandler> h) {
        std::lock_guard lock(mutex_);
        handler_ = std::move(h);
    }

    asio::io_context& io; // its threads are the worker pool for private-key operations
    const Limits limits;
    AccessLog& log;
    std::atomic<size_t> connections{0};
    std::atomic<size_t> operations_in_flight{0}; // server-wide, logged with each operation

  private:
    mutable std::mutex mutex_; // guards handler_, swapped by reload
    std::shared_ptr<const RequestHandler> handler_;
};

// Builds the server TLS context: TLS 1.2-1.3, client certificate required and verified.
// Throws ConfigError naming the file that failed.
asio::ssl::context make_server_tls_context(const Config& config);

class Server {
  public:
    Server(asio::io_context& io, asio::ssl::context& tls, const tcp::endpoint& listen,
           std::shared_ptr<ServerShared> shared);
    void start();
    void stop(); // stops accepting; open connections finish what is in flight
    tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  private:
    void accept();

    asio::io_context& io_;
    asio::ssl::context& tls_;
    tcp::acceptor acceptor_;
    std::shared_ptr<ServerShared> shared_;
};

// Resolves "HOST:PORT" (IPv6 as "[addr]:PORT") to a listening endpoint; port 0 picks one.
tcp::endpoint parse_listen_address(const std::string& text);

} // namespace keyless::keyserver
