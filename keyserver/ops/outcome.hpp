// What answering one request came to: the response, and what the access log and metrics say
// about it. Its own header so that observe/ reads outcomes without the dispatcher.
#pragma once

#include "protocol.hpp"

#include <cstddef>
#include <string>

namespace keyless::keyserver {

struct Outcome {
    protocol::Operation response;
    std::string key_name;  // empty when no key was resolved
    std::string operation; // e.g. "sign-tls", "rsa-sign-sha256"
    protocol::ErrorCode error = protocol::ErrorCode::None;
    std::string reason; // why it failed, for the access log (never key material)
    std::string shape;  // sign-TLS: what the message is (tls::Shape::name), accepted or not
    size_t size = 0;    // sign-TLS: the message's size in bytes
    // The key's token failed (HsmError): the client gets Internal, the access log "hsm error"
    // and the metrics result="hsm_error", so HSM trouble is not mistaken for bad requests.
    bool hsm_failure = false;
};

} // namespace keyless::keyserver
