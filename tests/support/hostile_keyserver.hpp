// A keyserver gone bad, for the provider's robustness tests: it completes the mTLS handshake
// with the test PKI's keyserver certificate, then floods every connection with well-formed reply
// frames for request ids nobody sent, as fast as it can, until the peer closes the connection or
// the flood reaches its bound. Stops (and joins its thread) when destroyed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

namespace keyless::test {

class FloodingKeyserver {
  public:
    explicit FloodingKeyserver(uint16_t port, size_t max_bytes_per_connection = 256u << 20);
    ~FloodingKeyserver();
    FloodingKeyserver(const FloodingKeyserver&) = delete;
    FloodingKeyserver& operator=(const FloodingKeyserver&) = delete;
    uint64_t bytes_sent() const { return sent_; }
    int connections() const { return connections_; }

  private:
    void run();
    int listen_fd_ = -1;
    size_t max_bytes_;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> sent_{0};
    std::atomic<int> connections_{0};
    std::thread thread_;
};

} // namespace keyless::test
