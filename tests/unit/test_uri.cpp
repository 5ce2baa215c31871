#include "uri.hpp"

#include "catch.hpp"

using namespace keyless;

TEST_CASE("URI: DNS name, IPv4, IPv6 and failover lists") {
    auto u = parse_key_uri("keyless:keys.example.com:2407/rsa-2048_v1.0");
    REQUIRE(u.endpoints.size() == 1);
    CHECK(u.endpoints[0].host == "keys.example.com");
    CHECK(u.endpoints[0].port == 2407);
    CHECK(u.key_id == "rsa-2048_v1.0");
    CHECK(u.to_string() == "keyless:keys.example.com:2407/rsa-2048_v1.0");

    auto v4 = parse_key_uri("keyless:127.0.0.1:1/k");
    CHECK(v4.endpoints[0].host == "127.0.0.1");

    auto v6 = parse_key_uri("keyless:[::1]:2407/k");
    CHECK(v6.endpoints[0].host == "::1");
    CHECK(v6.to_string() == "keyless:[::1]:2407/k");

    auto list = parse_key_uri("keyless:a.example:1,[fe80::1]:2,10.0.0.1:3/k");
    REQUIRE(list.endpoints.size() == 3);
    CHECK(list.endpoints[1] == Endpoint{"fe80::1", 2, ""});
    CHECK(list.endpoints[2] == Endpoint{"10.0.0.1", 3, ""});
}

TEST_CASE("URI: every malformed form is refused with a reason quoting the URI") {
    auto why = [](const char* uri) {
        try {
            parse_key_uri(uri);
        } catch (const UriError& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    CHECK_THAT(why("pkcs11:foo"), match::contains("scheme is not 'keyless:'"));
    CHECK_THAT(why("keyless:host:1"), match::contains("missing '/KEYID'"));
    CHECK_THAT(why("keyless:host:1/"), match::contains("key id ''"));
    CHECK_THAT(why("keyless:host:1/a/b"), match::contains("invalid port '1/a'"));
    CHECK_THAT(why("keyless:host:1/bad id"), match::contains("key id 'bad id'"));
    CHECK_THAT(why("keyless:host/k"), match::contains("missing ':PORT' in 'host'"));
    CHECK_THAT(why("keyless:host:0/k"), match::contains("invalid port '0'"));
    CHECK_THAT(why("keyless:host:65536/k"), match::contains("invalid port '65536'"));
    CHECK_THAT(why("keyless:host:12x/k"), match::contains("invalid port '12x'"));
    CHECK_THAT(why("keyless:::1:2407/k"), match::contains("must be written in brackets"));
    CHECK_THAT(why("keyless:[::1/k"), match::contains("unterminated '['"));
    CHECK_THAT(why("keyless:[nothex]:1/k"), match::contains("is not an IPv6 address"));
    CHECK_THAT(why("keyless:-bad-.example:1/k"), match::contains("is not a host name"));
    CHECK_THAT(why("keyless:a:1,,b:2/k"), match::contains("missing ':PORT'"));
    // No HOST:PORT: the provider's configured servers (a fleet named once, in openssl.cnf).
    CHECK(parse_key_uri("keyless:/k").endpoints.empty());
    CHECK(parse_key_uri("keyless:/k").to_string() == "keyless:/k");
    CHECK(parse_endpoint_list("10.0.0.1:2407,[::1]:2407", "servers").size() == 2);
    CHECK_THROWS_WITH(parse_endpoint_list("10.0.0.1", "servers"),
                      match::contains("bad keyserver list 'servers'"));
    CHECK_THAT(why("keyless:h:1/k"), match::contains("accepted"));
    CHECK_THAT(why("keyless:host:1/k"), match::contains("accepted"));
    CHECK_FALSE(is_valid_key_id(std::string(129, 'k')));
}
