// What every keyless operation reaches through its provider context: the core's error functions,
// a library context wired to the core (for reading the core's BIOs), and the keyserver client.
#pragma once

#include "client/client.hpp"

#include <openssl/core.h>
#include <openssl/core_dispatch.h>

#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace keyless::provider {

inline constexpr const char* kProperties = "provider=keyless";

// Keyservers that answered a keyless extension with BadOpcode (stock gokeyless servers): later
// operations for them go straight to the gokeyless equivalents, saving a round trip.
class ExtensionSupport {
  public:
    bool missing(const std::string& endpoint) const {
        std::lock_guard lock(mutex_);
        return missing_.count(endpoint) != 0;
    }
    void mark_missing(const std::string& endpoint) {
        std::lock_guard lock(mutex_);
        missing_.insert(endpoint);
    }

  private:
    mutable std::mutex mutex_; // calls come from every thread of the application
    std::set<std::string> missing_;
};

struct ProviderContext {
    const OSSL_CORE_HANDLE* handle = nullptr;
    OSSL_FUNC_core_new_error_fn* core_new_error = nullptr;
    OSSL_FUNC_core_set_error_debug_fn* core_set_error_debug = nullptr;
    OSSL_FUNC_core_vset_error_fn* core_vset_error = nullptr;
    ossl::LibCtx core_libctx; // from the core's dispatch: BIO_new_from_core_bio needs it
    std::unique_ptr<client::Client> client;
    std::string settings_error; // an invalid openssl.cnf value, reported at first use
    ExtensionSupport extensions;
};

} // namespace keyless::provider
