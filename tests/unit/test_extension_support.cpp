// What the provider remembers about keyservers without keyless's extensions: per endpoint, per
// connection, and only from answers.
#include "client/extension_support.hpp"

#include <catch2/catch.hpp>

using namespace keyless;
using namespace keyless::client;

namespace {

std::shared_ptr<Call> answered(const KeyUri& uri, const std::string& endpoint, uint64_t serial) {
    auto call =
        std::make_shared<Call>(uri.endpoints, protocol::Operation::make(protocol::Opcode::Ping),
                               std::chrono::steady_clock::now());
    call->last_endpoint = endpoint;
    call->connection_serial = serial;
    call->complete(protocol::Operation::make(protocol::Opcode::Pong), Failure::None, {});
    return call;
}

} // namespace

TEST_CASE("extension support is learnt per endpoint and forgotten on a new connection") {
    ExtensionSupport support;
    KeyUri uri = parse_key_uri("keyless:10.0.0.1:2407,10.0.0.2:2407/www");
    CHECK_FALSE(support.missing(uri)); // nothing known: try the extension

    // The first endpoint refuses an extension on connection 1.
    support.observe(uri, *answered(uri, "10.0.0.1:2407", 1), true);
    CHECK(support.missing(uri));
    // Later answers over the same connection change nothing.
    support.observe(uri, *answered(uri, "10.0.0.1:2407", 1), false);
    CHECK(support.missing(uri));

    // The URI fails over to the second endpoint, which has never refused: try again there.
    support.observe(uri, *answered(uri, "10.0.0.2:2407", 7), false);
    CHECK_FALSE(support.missing(uri));
    // Back on the first, still on the connection that refused.
    support.observe(uri, *answered(uri, "10.0.0.1:2407", 1), false);
    CHECK(support.missing(uri));

    // The first endpoint answers over a new connection (restarted, maybe upgraded): probe again.
    support.observe(uri, *answered(uri, "10.0.0.1:2407", 2), false);
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
