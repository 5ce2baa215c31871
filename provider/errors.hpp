// Errors the provider reports through OpenSSL's error queue: a reason code (with a string from
// the provider's reason table) and a message naming the URI, the key and the cause.
#pragma once

#include "provider_context.hpp"

#include <openssl/core.h>

#include <stdexcept>
#include <string>

namespace keyless::provider {

enum Reason : int {
    KEYLESS_R_BAD_URI = 100,
    KEYLESS_R_BAD_CONFIG,
    KEYLESS_R_KEYSERVER_UNREACHABLE,
    KEYLESS_R_KEYSERVER_TIMEOUT,
    KEYLESS_R_KEYSERVER_TLS,
    KEYLESS_R_KEY_NOT_FOUND,
    KEYLESS_R_DENIED,
    KEYLESS_R_KEYSERVER_ERROR,
    KEYLESS_R_UNSUPPORTED,
    KEYLESS_R_BAD_STUB,
    KEYLESS_R_INTERNAL,
    KEYLESS_R_KEY_MISMATCH,
    KEYLESS_R_PRIVATE_KEY_REMOTE,
};

const OSSL_ITEM* reason_strings();

class KeylessError : public std::runtime_error {
  public:
    KeylessError(int reason, const std::string& message)
        : std::runtime_error(message), reason_(reason) {}
    int reason() const { return reason_; }

  private:
    int reason_;
};

void raise_error(const ProviderContext* prov, int reason, const std::string& message,
                 const char* func);

// Runs `body`; any exception becomes an error on OpenSSL's queue and `on_error` is returned.
// No exception ever crosses into OpenSSL.
template <typename R, typename F>
R guarded(const ProviderContext* prov, const char* func, R on_error, F&& body) noexcept {
    try {
        return body();
    } catch (const KeylessError& e) {
        raise_error(prov, e.reason(), e.what(), func);
    } catch (const std::exception& e) {
        raise_error(prov, KEYLESS_R_INTERNAL, e.what(), func);
    } catch (...) {
        raise_error(prov, KEYLESS_R_INTERNAL, "unknown error", func);
    }
    return on_error;
}

} // namespace keyless::provider
