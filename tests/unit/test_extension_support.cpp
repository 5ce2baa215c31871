// What the provider remembers about keyservers without keyless's extensions: per endpoint, until a
// connection to it breaks, and only from answers.
#include "client/extension_support.hpp"

#include "catch.hpp"

using namespace keyless;
using namespace keyless::client;

namespace {

std::shared_ptr<Call> answered(const KeyUri& uri, const std::string& endpoint, uint64_t epoch) {
    auto call =
        std::make_shared<Call>(uri.endpoints, protocol::Operation::make(protocol::Opcode::Ping),
                               std::chrono::steady_clock::now());
    call->last_endpoint = endpoint;
    call->endpoint_epoch = epoch;
    call->complete(protocol::Operation::make(protocol::Opcode::Pong), Failure::None, {});
    return call;
}

} // namespace

TEST_CASE("extension support is learnt per endpoint and forgotten after a broken connection") {
    ExtensionSupport support;
    KeyUri uri = parse_key_uri("keyless:10.0.0.1:2407,10.0.0.2:2407/www");
    CHECK_FALSE(support.missing(uri)); // nothing known: try the extension

    // The first endpoint refuses an extension (no connection to it has broken yet: epoch 0).
    support.observe(uri, *answered(uri, "10.0.0.1:2407", 0), true);
    CHECK(support.missing(uri));
    // Later answers in the same epoch (any pooled connection) change nothing.
    support.observe(uri, *answered(uri, "10.0.0.1:2407", 0), false);
    CHECK(support.missing(uri));

    // The URI fails over to the second endpoint, which has never refused: try again there.
    support.observe(uri, *answered(uri, "10.0.0.2:2407", 7), false);
    CHECK_FALSE(support.missing(uri));
    // Back on the first, in the epoch that refused.
    support.observe(uri, *answered(uri, "10.0.0.1:2407", 0), false);
    CHECK(support.missing(uri));

    // The first endpoint answers after a connection to it broke (restarted, maybe upgraded):
    // probe again.
    support.observe(uri, *answered(uri, "10.0.0.1:2407", 1), false);
    CHECK_FALSE(support.missing(uri));

    // A call no server answered teaches nothing.
    auto failed =
        std::make_shared<Call>(uri.endpoints, protocol::Operation::make(protocol::Opcode::Ping),
                               std::chrono::steady_clock::now());
    failed->last_endpoint = "10.0.0.1:2407";
    failed->complete(std::nullopt, Failure::Unreachable, "down");
    support.observe(uri, *failed, true);
    CHECK_FALSE(support.missing(uri));
}
