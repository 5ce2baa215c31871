// The BIO under a keyserver connection's TLS: OpenSSL's socket BIO, but writing with
// send(MSG_NOSIGNAL). A keyserver closing a connection then cannot raise SIGPIPE in the host
// application, whichever thread writes (a caller writes its own request: io_core.hpp), and no
// thread has to block and check the signal around each write (four syscalls per request).
#pragma once

#include "ossl.hpp"

namespace keyless::client {

// A BIO reading and writing the non-blocking socket `fd`, which it does not close.
ossl::Bio socket_bio(int fd);

} // namespace keyless::client
