// What the provider's client remembers about keyservers without keyless's extensions: per
// endpoint, while the connections of the epoch that refused last.
#include "client/extension_support.hpp"

#include "catch.hpp"

using keyless::client::ExtensionSupport;

TEST_CASE("extension support is learnt per endpoint and forgotten after a broken connection") {
    ExtensionSupport support;
    CHECK_FALSE(support.lacks("10.0.0.1:2407", 0)); // nothing known: send keyless's form

    // The first endpoint refuses an extension (no connection to it has broken yet: epoch 0).
    support.refused("10.0.0.1:2407", 0);
    CHECK(support.lacks("10.0.0.1:2407", 0));
    // The second endpoint of the same URI is not the first: a mixed fleet.
    CHECK_FALSE(support.lacks("10.0.0.2:2407", 0));
    CHECK_FALSE(support.lacks("10.0.0.2:2407", 7));

    // After a connection to the first broke (restarted, maybe upgraded): ask again.
    CHECK_FALSE(support.lacks("10.0.0.1:2407", 1));
    // And it refused again on the new connection.
    support.refused("10.0.0.1:2407", 1);
    CHECK(support.lacks("10.0.0.1:2407", 1));
    CHECK_FALSE(support.lacks("10.0.0.1:2407", 0));
}
