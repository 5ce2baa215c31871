// A deliberately simple blocking keyless client for tests, built on the project's codec: one
// mTLS connection, raw frames in and out. (The provider has the real, multiplexing client.)
#pragma once

#include "protocol.hpp"

#include <memory>
#include <optional>
#include <string>

namespace keyless::test {

struct ClientOptions {
    std::string host = "127.0.0.1";
    uint16_t port = 0;
    std::string cert; // empty: no client certificate
    std::string key;
    std::string ca;
    int timeout_ms = 5000;
    // SO_RCVBUF before connecting (0: the kernel's): a small one makes a client that does not
    // read hold the server's replies in the server, not in the kernel.
    int receive_buffer = 0;
};

class TestClient {
  public:
    // Connects and completes the TLS handshake; throws std::runtime_error with the reason.
    explicit TestClient(const ClientOptions& options);
    ~TestClient();
    TestClient(const TestClient&) = delete;
    TestClient& operator=(const TestClient&) = delete;

    void send_raw(ByteView bytes);
    // Ends the sending direction (after a TLS close_notify, or as a bare TCP FIN) and keeps
    // receiving: a half-close.
    void close_write(bool close_notify);
    uint32_t send(const protocol::Operation& op); // returns the request id used
    void send(uint32_t id, const protocol::Operation& op);
    // One response frame; nullopt when the server closed the connection (or refused us).
    std::optional<std::pair<uint32_t, protocol::Operation>> receive();
    // send + receive; throws if the connection closed or the id does not match.
    protocol::Operation call(const protocol::Operation& op);

  private:
    bool read_exact(uint8_t* out, size_t n);
    struct State;
    std::unique_ptr<State> state_;
    uint32_t next_id_ = 1;
};

} // namespace keyless::test
