// What every keyless operation reaches through its provider context: the core's error functions,
// a library context wired to the core (for reading the core's BIOs), and the keyserver client.
#pragma once

#include "client/client.hpp"

#include <openssl/core.h>
#include <openssl/core_dispatch.h>

#include <memory>
#include <string>

namespace keyless::provider {

inline constexpr const char* kProperties = "provider=keyless";

struct ProviderContext {
    const OSSL_CORE_HANDLE* handle = nullptr;
    OSSL_FUNC_core_new_error_fn* core_new_error = nullptr;
    OSSL_FUNC_core_set_error_debug_fn* core_set_error_debug = nullptr;
    OSSL_FUNC_core_vset_error_fn* core_vset_error = nullptr;
    ossl::LibCtx core_libctx; // from the core's dispatch: BIO_new_from_core_bio needs it
    std::unique_ptr<client::Client> client;
    std::string settings_error; // an invalid openssl.cnf value, reported at first use
};

} // namespace keyless::provider
