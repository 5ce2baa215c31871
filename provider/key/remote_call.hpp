// Runs one keyserver request for an operation on a key: blocking with a timeout on a normal
// thread, or, inside an OpenSSL ASYNC job (haproxy ssl-mode-async), by handing the job a wait fd
// and pausing it until the reply or the timeout arrives. The key object (key_object.hpp) asks
// through it, and it asks the client: calls run one way, key -> remote call -> client.
#pragma once

#include "client/client.hpp"

namespace keyless::provider {

// The finished call (its response or failure). `fallback`: the same operation in gokeyless's
// form, which the client sends instead to a keyserver without keyless's extensions.
std::shared_ptr<client::Call> remote_call(client::Client& client, const KeyUri& uri,
                                          protocol::Operation request,
                                          std::optional<protocol::Operation> fallback);

} // namespace keyless::provider
