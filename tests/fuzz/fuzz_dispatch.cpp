// libFuzzer target: decoded frames through the request handler, with real keys (from
// $KEYLESS_TEST_PKI/keys, or none), must yield a response for everything and never crash.
#include "ops/dispatch.hpp"

#include <cstdlib>

using namespace keyless;
using namespace keyless::keyserver;

namespace {

std::shared_ptr<const ServingState> make_state() {
    Policies policies;
    policies.default_policy.allow = {Permission::SignTLS, Permission::SignDigest,
                                     Permission::RSADecryptTLS, Permission::RSADecryptRaw};
    // Keys without sign-digest, so the strict sign-TLS checks (shape, scheme, DHE and SHA-1
    // opt-ins, client CertificateVerify) are reached too; and one hidden from this client.
    policies.key_policies["p256"].allow = {Permission::SignTLS, Permission::SignTLSClient};
    policies.key_policies["p256"].tls12_dhe = true;
    policies.key_policies["rsa-default"].allow = {Permission::SignTLS};
    policies.key_policies["rsa-default"].allow_sha1 = true;
    policies.key_policies["ed25519"].allow = {Permission::SignTLS};
    policies.key_policies["ec-restricted"].clients = {ClientSelector::parse("cn:someone-else")};
    const char* pki = std::getenv("KEYLESS_TEST_PKI");
    KeyStore keys;
    if (pki) keys = KeyStore::load_directory(std::string(pki) + "/keys", false);
    auto state = std::make_shared<ServingState>();
    state->keys = std::move(keys);
    state->policies = std::move(policies);
    return state;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // Built once per process: the fuzzer's inputs are what vary. (Reason for the static.)
    static const Dispatcher dispatcher(make_state());
    ClientIdentity client;
    client.common_name = "fuzzer";
    try {
        auto op = protocol::decode_body(ByteView(data, size));
        auto outcome = dispatcher.handle(client, op);
        (void)dispatcher.resolve(client, op).usable_name(); // what rate limits charge
        if (!outcome.response.opcode) std::abort();
        (void)protocol::encode(1, outcome.response);
    } catch (const protocol::FormatError&) {
    }
    return 0;
}
