// One client connection: reads whatever frames have arrived, answers cheap ones (EC, Ed25519,
// ping, public keys) inline on its strand and RSA ones on the worker pool, writes the replies
// ready at one moment as one TLS write (possibly out of order), and enforces the per-connection
// limits.
#pragma once

#include "net/server.hpp"

#include <optional>

namespace keyless::keyserver {

class Connection : public std::enable_shared_from_this<Connection> {
  public:
    Connection(tcp::socket socket, std::shared_ptr<asio::ssl::context> tls,
               std::shared_ptr<ServerShared> shared);
    ~Connection();
    // Runs the handshake; `ticket` is this connection's place in the handshake budget.
    void start(uint64_t ticket);
    // Closes a connection the handshake budget had no room for, or evicted (from any thread).
    void refuse();
    void evict();
    // Stops reading; closes once what was read is answered (from any thread).
    void drain();
    const std::string& source() const { return source_; } // the peer's address, for budgets
    // After a trust reload: closes the connection if `tls` no longer trusts its client.
    void recheck_client(std::shared_ptr<asio::ssl::context> tls);

  private:
    void on_handshake(const boost::system::error_code& ec);
    void read_more();
    void process_input();
    void on_frame(const protocol::Header& header, ByteView body);
    void dispatch(uint32_t id, protocol::Operation request, size_t frame_bytes);
    void finish(uint32_t id, const Outcome& outcome, std::chrono::steady_clock::time_point start,
                size_t server_in_flight, size_t frame_bytes);
    void shed(uint32_t id, const protocol::Operation& request, const Resolution& resolved,
              std::string why, const char* metric_reason);
    void account(size_t add, size_t remove); // buffered bytes, here and server-wide
    // Gives back what a burst grew the buffers to once they are empty again, and counts what
    // they hold in ServerShared::buffer_capacity.
    void release_idle_buffers();
    void track_capacity();
    void reply(uint32_t id, const Outcome& outcome, std::chrono::steady_clock::time_point start,
               size_t in_flight);
    void flush_replies();
    void write_log();
    bool saturated() const;
    void resume_reading();
    void end_of_input();
    void close_when_drained();
    void arm_timer(std::chrono::milliseconds after);
    void on_timeout();
    void close(const std::string& why);

    std::shared_ptr<asio::ssl::context> tls_; // the trust this connection was accepted under
    asio::ssl::stream<tcp::socket> stream_;
    asio::steady_timer timer_;
    std::shared_ptr<ServerShared> shared_;
    std::string peer_;
    std::string source_;
    std::optional<uint64_t> budget_ticket_; // held while handshaking
    bool authenticated_ = false;
    ClientIdentity client_;
    Bytes in_;              // received, not yet parsed: at most one read chunk and one frame
    size_t in_used_ = 0;    // bytes of in_ that hold data
    size_t next_frame_ = 0; // the size of the incomplete frame at the front of in_, once known
    Bytes out_;             // encoded replies waiting for the current write to finish
    Bytes writing_;         // the replies of the TLS write in progress
    size_t replies_unwritten_ = 0; // in out_ and writing_
    size_t replies_writing_ = 0;   // in writing_
    std::string log_batch_; // access-log lines of the replies in out_: written before they are
    bool batching_ = false; // inside process_input(): replies wait for one write at its end
    std::chrono::steady_clock::time_point last_activity_;
    size_t in_flight_ = 0;
    size_t buffered_ = 0; // bytes of requests in flight and of unwritten replies
    size_t capacity_ = 0; // what in_, out_, writing_ and log_batch_ hold allocated
    bool reading_paused_ = false;
    bool writing_in_progress_ = false;
    bool input_ended_ = false; // the client half-closed: finish what was read, then close
    bool handshake_done_ = false;
    bool closed_ = false;
};

} // namespace keyless::keyserver
