#include "errors.hpp"

#include <cstdarg>

namespace keyless::provider {

const OSSL_ITEM* reason_strings() {
    static const OSSL_ITEM items[] = {
        {KEYLESS_R_BAD_URI, const_cast<char*>("bad keyless URI")},
        {KEYLESS_R_BAD_CONFIG, const_cast<char*>("keyless provider misconfigured")},
        {KEYLESS_R_KEYSERVER_UNREACHABLE, const_cast<char*>("keyserver unreachable")},
        {KEYLESS_R_KEYSERVER_TIMEOUT, const_cast<char*>("keyserver timed out")},
        {KEYLESS_R_KEYSERVER_TLS, const_cast<char*>("keyserver TLS handshake failed")},
        {KEYLESS_R_KEY_NOT_FOUND, const_cast<char*>("key not found on keyserver")},
        {KEYLESS_R_DENIED, const_cast<char*>("denied by keyserver policy")},
        {KEYLESS_R_KEYSERVER_ERROR, const_cast<char*>("keyserver error")},
        {KEYLESS_R_UNSUPPORTED, const_cast<char*>("unsupported by keyless")},
        {KEYLESS_R_BAD_STUB, const_cast<char*>("bad keyless key stub")},
        {KEYLESS_R_INTERNAL, const_cast<char*>("keyless internal error")},
        {KEYLESS_R_KEY_MISMATCH, const_cast<char*>("keyserver key does not match")},
        {KEYLESS_R_PRIVATE_KEY_REMOTE, const_cast<char*>("private key is on the keyserver")},
        {0, nullptr},
    };
    return items;
}

namespace {

void set_error(const ProviderContext* prov, int reason, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    prov->core_vset_error(prov->handle, static_cast<uint32_t>(reason), fmt, args);
    va_end(args);
}

} // namespace

void raise_error(const ProviderContext* prov, int reason, const std::string& message,
                 const char* func) {
    if (!prov || !prov->core_new_error) return;
    prov->core_new_error(prov->handle);
    prov->core_set_error_debug(prov->handle, "keyless", 0, func);
    set_error(prov, reason, "%s", message.c_str());
}

} // namespace keyless::provider
