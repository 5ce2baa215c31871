// Runs one keyserver request for an operation on a key: blocking with a timeout on a normal
// thread, or, inside an OpenSSL ASYNC job (haproxy ssl-mode-async), by handing the job a wait fd
// and pausing it until the reply or the timeout arrives.
#pragma once

#include "key_object.hpp"

namespace keyless::provider {

// The finished call (its response or failure); `fallback` as for KeyObject::start.
std::shared_ptr<client::Call>
remote_call(const KeyObject& key, protocol::Operation request,
            std::optional<protocol::Operation> fallback = std::nullopt);

} // namespace keyless::provider
