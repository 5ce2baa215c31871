// Turns one decoded request into one response: finds the key, applies the key's policy to the
// client, and runs the operation. No I/O, so it is unit-testable and fuzzable.
#pragma once

#include "keys/key_store.hpp"
#include "ops/outcome.hpp"
#include "ops/policy.hpp"
#include "protocol.hpp"

#include <functional>
#include <memory>

namespace keyless::keyserver {

// What a dispatcher serves; swapped whole on reload.
struct ServingState {
    KeyStore keys;
    Policies policies;
    size_t max_ping_payload = 4096; // limits.max_ping_payload
};

// What the transport asks to answer a request. The Dispatcher below is the real one; a test
// build wraps it (tests/support/keyserver_for_tests.cpp) to play other servers or a slow link.
class RequestHandler {
  public:
    virtual ~RequestHandler() = default;
    // Answers `request` by calling `done` exactly once: at once on this thread, or later on any.
    virtual void answer(const ClientIdentity& client, const protocol::Operation& request,
                        std::function<void(Outcome)> done) const = 0;
    // The name of the key `request` is for, when it exists and `client` may use it, else "":
    // what rate limits charge (a client cannot spend another tenant's key budget).
    virtual std::string key_for(const ClientIdentity& client,
                                const protocol::Operation& request) const = 0;
    // Whether answering costs less than handing the request to another thread (EC and Ed25519
    // signatures, pings, public keys, errors): the transport then answers on its own thread.
    virtual bool runs_inline(const protocol::Operation& request) const = 0;
};

class Dispatcher : public RequestHandler {
  public:
    explicit Dispatcher(std::shared_ptr<const ServingState> state) : state_(std::move(state)) {}
    Outcome handle(const ClientIdentity& client, const protocol::Operation& request) const;
    // Answers at once, or, for a key in a token, on the token's own workers.
    void answer(const ClientIdentity& client, const protocol::Operation& request,
                std::function<void(Outcome)> done) const override;
    std::string key_for(const ClientIdentity& client,
                        const protocol::Operation& request) const override;
    bool runs_inline(const protocol::Operation& request) const override;

  private:
    // By name when the request has one, else by SKI; null when there is no such key.
    std::shared_ptr<const Key> find_key(const protocol::Operation& request) const;
    std::shared_ptr<const ServingState> state_;
};

// The response for a frame whose body did not decode (Format) or whose version is unknown.
Outcome format_error(std::string reason);
// An Error response with `code`, the reason kept for the access log.
Outcome error_outcome(protocol::ErrorCode code, std::string reason);
// How the access log and metrics name a request's operation ("sign-tls", "opcode-99", ...).
std::string operation_name(const protocol::Operation& request);
Outcome version_mismatch(uint8_t major);

} // namespace keyless::keyserver
