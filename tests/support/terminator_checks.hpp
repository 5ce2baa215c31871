// What every keyless edge must do, checked against a running terminator: shared by the
// interop tests (file keys) and the HSM tests (the same matrix with keys in a token).
#pragma once

#include "keyserver_fixture.hpp"
#include "terminators.hpp"

namespace keyless::test {

// TLS 1.3 RSA-PSS and ECDSA, TLS 1.2 ECDHE-RSA, ECDHE-ECDSA and RSA key exchange, each with
// s_client and curl, on the terminator's RSA and EC ports: every handshake succeeds, returns
// the terminator's body, and shows up as one operation in the keyserver's access log.
void check_matrix(Terminator& t, KeyserverFixture& keyserver);

} // namespace keyless::test
