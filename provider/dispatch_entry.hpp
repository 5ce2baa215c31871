// Typed OSSL_DISPATCH entries. OpenSSL's tables hold untyped function pointers; KEYLESS_FN checks
// each function against the OSSL_FUNC_*_fn type OpenSSL declares for its id, so a wrong signature
// fails to compile instead of crashing at run time:
//   KEYLESS_FN(SIGNATURE_NEWCTX, signature_newctx, sig_newctx)
#pragma once

#include <openssl/core_dispatch.h>

namespace keyless::provider {

template <typename Fn> OSSL_DISPATCH dispatch_entry(int id, Fn* fn) {
    return {id, reinterpret_cast<void (*)()>(fn)};
}

} // namespace keyless::provider

#define KEYLESS_FN(ID, name, fn)                                                                   \
    ::keyless::provider::dispatch_entry<OSSL_FUNC_##name##_fn>(OSSL_FUNC_##ID, fn)
