// The admin HTTP listener (Boost.Beast on the keyserver's io_context), for operators and
// monitoring: GET /metrics, GET /healthz, POST /drain, POST /reload, GET /keys. Plain HTTP on a
// loopback address by default; any other address needs a bearer token. What changes the
// keyserver (POST) always needs the token; GET /healthz never does (load balancers check it),
// but names no keys without it. Each request is bounded (5 s, 4 KiB) and answered with
// Connection: close.
#pragma once

#include <utility> // Boost 1.74's asio/awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>

#include <functional>
#include <memory>
#include <string>

namespace keyless::keyserver {

struct AdminResponse {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

// What the endpoints do; the app supplies them.
struct AdminActions {
    std::function<AdminResponse()> metrics;
    std::function<AdminResponse(bool detailed)> health; // detailed: may name keys
    std::function<AdminResponse()> drain;
    std::function<AdminResponse()> reload;
    std::function<AdminResponse()> keys;
};

class AdminServer {
  public:
    // Throws std::runtime_error when the address cannot be bound.
    AdminServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& listen,
                std::string token, AdminActions actions);
    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
    void stop();

  private:
    void accept();
    boost::asio::io_context& io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer retry_;
    std::shared_ptr<const std::string> token_; // empty: no authentication (loopback only)
    std::shared_ptr<const AdminActions> actions_;
};

} // namespace keyless::keyserver
