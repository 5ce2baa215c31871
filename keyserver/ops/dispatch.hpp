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
    // Configured keys whose source failed (a bad file, a token that did not log in): not
    // served, named in /healthz, /keys and keyless_keys_unavailable.
    std::vector<UnavailableKey> unavailable;
};

// A request's key and the client's standing on it: looked up once per request (by the
// transport, before rate limits) and passed on to every later step.
struct Resolution {
    std::shared_ptr<const Key> key;    // null: no key of that name or SKI
    const KeyPolicy* policy = nullptr; // the key's policy (owned by the ServingState)
    bool allowed = false;              // the client may use the key
    // The name rate limits charge and the log may show: only a key that exists and that the
    // client may use (a requested name is the client's text, and may be another tenant's).
    std::string usable_name() const { return key && allowed ? key->name : std::string(); }
    // The name the access log and metrics show for the request, on every path (answered or
    // shed): a key that exists, or the SKI asked for. A requested name that matches no key is
    // the client's text (any bytes, up to a frame's size) and is never written.
    std::string logged_name(const protocol::Operation& request) const;
};

// What the transport asks to answer a request. The Dispatcher below is the real one; a test
// build wraps it (tests/support/keyserver_for_tests.cpp) to play other servers or a slow link.
class RequestHandler {
  public:
    virtual ~RequestHandler() = default;
    // Finds the key `request` is for and whether `client` may use it.
    virtual Resolution resolve(const ClientIdentity& client,
                               const protocol::Operation& request) const = 0;
    // Answers `request` (resolved by resolve()) by calling `done` exactly once: at once on this
    // thread, or later on any.
    virtual void answer(const ClientIdentity& client, const protocol::Operation& request,
                        const Resolution& resolved, std::function<void(Outcome)> done) const = 0;
    // Whether answering costs less than handing the request to another thread (EC and Ed25519
    // signatures, pings, public keys, errors): the transport then answers on its own thread.
    virtual bool runs_inline(const protocol::Operation& request,
                             const Resolution& resolved) const = 0;
};

class Dispatcher : public RequestHandler {
  public:
    explicit Dispatcher(std::shared_ptr<const ServingState> state) : state_(std::move(state)) {}
    // Resolves and answers on this thread (tests, fuzzing, the emulations of test builds).
    Outcome handle(const ClientIdentity& client, const protocol::Operation& request) const;
    // Answers on this thread from what resolve() found: no lookup happens here.
    Outcome handle(const ClientIdentity& client, const protocol::Operation& request,
                   const Resolution& resolved) const {
        return respond(*state_, client, request, resolved);
    }
    // By name when the request has one, else by SKI; the client's policy on that key.
    Resolution resolve(const ClientIdentity& client,
                       const protocol::Operation& request) const override;
    // Answers at once, or, for a key in a token, on the token's own workers.
    void answer(const ClientIdentity& client, const protocol::Operation& request,
                const Resolution& resolved, std::function<void(Outcome)> done) const override;
    bool runs_inline(const protocol::Operation& request, const Resolution& resolved) const override;

  private:
    // The answer, from what resolve() found: no lookup happens here.
    static Outcome respond(const ServingState& state, const ClientIdentity& client,
                           const protocol::Operation& request, const Resolution& resolved);
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
