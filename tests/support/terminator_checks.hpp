// What every keyless edge must do, checked against a running terminator: shared by the
// interop tests (stub files and URIs) and the HSM tests (the same matrix with keys in a token).
#pragma once

#include "keyserver_fixture.hpp"
#include "terminators.hpp"

#include <string>
#include <vector>

namespace keyless::test {

// A keyserver with rsa2048 (sign-tls, rsa-decrypt-tls), p256 and ed25519 (sign-tls) and p384
// (sign-tls-client); an openssl.cnf for edge-1 (`conf_extra`: more lines of the keyless
// section); stubs written offline from the certificates, no keyserver needed.
struct EdgeSetup {
    explicit EdgeSetup(std::vector<std::string> keyserver_args = {},
                       const std::string& conf_extra = "");
    std::string subdir(const std::string& name);
    std::string uri(const std::string& key) const; // keyless:ADDRESS/key
    KeyserverFixture keyserver;
    TempDir dir;
    std::string conf;
    EdgeKeys keys; // the RSA and EC certificates with their stubs
};

// The matrix below, 200 concurrent handshakes, the keyserver killed and restarted under the
// terminator, and the terminator's own reload; the terminator stays up throughout.
void check_full_suite(Terminator& t, KeyserverFixture& keyserver);

// TLS 1.3 RSA-PSS and ECDSA, TLS 1.2 ECDHE-RSA, ECDHE-ECDSA and RSA key exchange, each with
// s_client and curl, on the terminator's RSA and EC ports: every handshake succeeds, returns
// the terminator's body, and shows up as one operation in the keyserver's access log.
void check_matrix(Terminator& t, KeyserverFixture& keyserver);

} // namespace keyless::test
