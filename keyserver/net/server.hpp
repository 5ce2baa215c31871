// The mTLS listener: accepts connections, runs the handshake, and hands each connection frames
// to dispatch. Transport only: what a request means is the Dispatcher's business.
#pragma once

#include "config/config.hpp"
#include "net/handshake_budget.hpp"
#include "observe/access_log.hpp"
#include "observe/metrics.hpp"
#include "ops/dispatch.hpp"

#include <utility> // Boost 1.74's asio/awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace keyless::keyserver {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// A log line that may be wanted thousands of times a second (refused connections, failed
// accepts or handshakes): per reason, the first occurrence is printed at once, the rest are
// counted and printed as one summary line at most every `interval`. Thread-safe.
class RateLimitedLog {
  public:
    explicit RateLimitedLog(std::string what,
                            std::chrono::seconds interval = std::chrono::seconds(10))
        : what_(std::move(what)), interval_(interval) {}
    // `reason` groups occurrences (at most 64 distinct ones are told apart); `detail` (e.g. the
    // peer) is printed with the line that is printed.
    void note(const std::string& reason, const std::string& detail = "");

  private:
    struct Tally {
        std::chrono::steady_clock::time_point last_print{};
        size_t unprinted = 0;
    };
    std::mutex mutex_;
    const std::string what_;
    const std::chrono::seconds interval_;
    std::map<std::string, Tally> tallies_;
};

class Connection;

// What every connection shares with the server.
class ServerShared {
  public:
    ServerShared(asio::io_context& io_context, Limits connection_limits, AccessLog& access_log,
                 std::shared_ptr<const RequestHandler> handler)
        : io(io_context), limits(connection_limits), log(access_log),
          handshakes(connection_limits.max_handshaking,
                     connection_limits.max_handshaking_per_source),
          handler_(std::move(handler)) {}

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
    std::atomic<size_t> authenticated{0}; // connections past the mTLS handshake
    std::mutex recheck_mutex;             // serialises re-verifying clients after a reload
    HandshakeBudget<std::weak_ptr<Connection>> handshakes;
    std::atomic<size_t> operations_in_flight{0}; // server-wide, logged with each operation
    std::atomic<size_t> buffered_bytes{0};       // requests in flight + unwritten replies
    // What the connections' buffers hold allocated, in use or not (buffered_bytes counts only
    // the bytes in use): the memory a past burst left behind is visible here.
    std::atomic<size_t> buffer_capacity{0};
    RateLimitedLog overload_log{"overloaded"};
    Metrics metrics;
    RateLimiter rate_limiter; // configured at start and on every reload

    // Authenticated connections, so a trust reload can re-check their clients.
    void track(const std::shared_ptr<Connection>& c);
    void untrack(const Connection* c);
    std::vector<std::shared_ptr<Connection>> tracked() const;
    RateLimitedLog handshake_failures{"mTLS handshake failed"};
    RateLimitedLog budget_log{"connection budget"};

  private:
    mutable std::mutex mutex_; // guards handler_, swapped by reload, and tracked_
    std::shared_ptr<const RequestHandler> handler_;
    std::map<const Connection*, std::weak_ptr<Connection>> tracked_;
};

// Builds the server TLS context: TLS 1.2-1.3, client certificate required and verified against
// the client CA (and the CRL, when one is configured). Throws ConfigError naming the file that
// failed.
std::shared_ptr<asio::ssl::context> make_server_tls_context(const Config& config);
// Warnings about the TLS files worth an operator's attention (certificates expiring within 30
// days, an expired client CA), each naming the file.
std::vector<std::string> tls_warnings(const Config& config);
// Why a client certificate chain does not verify under `tls`'s trust (CA, CRL), or empty.
std::string untrusted_because(asio::ssl::context& tls, X509* leaf, STACK_OF(X509) * chain);

class Server {
  public:
    Server(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls,
           const tcp::endpoint& listen, std::shared_ptr<ServerShared> shared);
    void start();
    void stop(); // stops accepting; open connections finish what is in flight
    // New trust (certificate, key, client CA, CRL) for new handshakes; authenticated connections
    // whose client it no longer trusts are closed.
    void replace_tls(std::shared_ptr<asio::ssl::context> tls);
    tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  private:
    void accept();
    void admit(tcp::socket socket);
    void pause_accepting(const boost::system::error_code& why);

    asio::io_context& io_;
    // The acceptor's handlers, the trust swap, the pause timer and stop() all run here: the pool
    // has several threads, and a SIGHUP's swap must not race an accept reading tls_.
    asio::strand<asio::io_context::executor_type> strand_;
    std::shared_ptr<asio::ssl::context> tls_; // read and written on strand_ only
    tcp::acceptor acceptor_;
    asio::steady_timer accept_pause_; // out of descriptors: wait before accepting again
    std::shared_ptr<ServerShared> shared_;
    RateLimitedLog fd_log_{"out of file descriptors"};
};

// Raises the soft RLIMIT_NOFILE to the hard limit and returns what to tell the operator (a
// line per finding; empty when all is well), e.g. when the limit cannot hold `connections`.
std::vector<std::string> raise_fd_limit(size_t connections);

// Resolves "HOST:PORT" (IPv6 as "[addr]:PORT") to a listening endpoint; port 0 picks one.
tcp::endpoint parse_listen_address(const std::string& text);

} // namespace keyless::keyserver
