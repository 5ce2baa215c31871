// STORE for the "keyless" URI scheme: `openssl s_server -key keyless:HOST:PORT/KEYID` and any
// OSSL_STORE user. Loading fetches the public key once from the keyserver; failures are reported
// as errors (naming the URI and the cause), never as an empty store.
#include "dispatch_entry.hpp"
#include "dispatch_tables.hpp"
#include "key/key_reference.hpp"

#include <openssl/core_names.h>

namespace keyless::provider {

namespace {

struct StoreContext {
    ProviderContext* prov = nullptr;
    std::string uri;
    enum class State { Fresh, Loaded, Failed, FailedReported } state = State::Fresh;
};

void* store_open(void* provctx, const char* uri) {
    auto* prov = static_cast<ProviderContext*>(provctx);
    return guarded(prov, "keyless_store_open", static_cast<void*>(nullptr), [&]() -> void* {
        try {
            parse_key_uri(uri); // a malformed URI is an error now, with the reason
        } catch (const UriError& e) {
            throw KeylessError(KEYLESS_R_BAD_URI, e.what());
        }
        auto ctx = std::make_unique<StoreContext>();
        ctx->prov = prov;
        ctx->uri = uri;
        return ctx.release();
    });
}

int store_load(void* vctx, OSSL_CALLBACK* object_cb, void* object_cbarg, OSSL_PASSPHRASE_CALLBACK*,
               void*) {
    auto* ctx = static_cast<StoreContext*>(vctx);
    if (ctx->state != StoreContext::State::Fresh) return 0;
    ctx->state = StoreContext::State::Failed;
    return guarded(ctx->prov, "keyless_store_load", 0, [&] {
        auto key = KeyObject::fetch(ctx->prov, ctx->uri);
        ctx->state = StoreContext::State::Loaded;
        return pass_key(key, object_cb, object_cbarg);
    });
}

int store_eof(void* vctx) {
    auto* ctx = static_cast<StoreContext*>(vctx);
    switch (ctx->state) {
    case StoreContext::State::Fresh:
        return 0;
    case StoreContext::State::Failed:
        // OSSL_STORE_load only records a loader's failure as an error when the loader is not at
        // EOF right after it: say "not yet" once, then EOF, so callers neither miss the error
        // nor loop on it.
        ctx->state = StoreContext::State::FailedReported;
        return 0;
    default:
        return 1;
    }
}

int store_close(void* vctx) {
    std::unique_ptr<StoreContext> reclaim(static_cast<StoreContext*>(vctx));
    return 1;
}

int store_set_ctx_params(void*, const OSSL_PARAM[]) {
    return 1; // expectations and search criteria: a keyless URI names exactly one key
}

const OSSL_PARAM* store_settable_ctx_params(void*) {
    static const OSSL_PARAM params[] = {OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, nullptr),
                                        OSSL_PARAM_END};
    return params;
}

} // namespace

const OSSL_DISPATCH store_functions[] = {
    KEYLESS_FN(STORE_OPEN, store_open, store_open),
    KEYLESS_FN(STORE_LOAD, store_load, store_load),
    KEYLESS_FN(STORE_EOF, store_eof, store_eof),
    KEYLESS_FN(STORE_CLOSE, store_close, store_close),
    KEYLESS_FN(STORE_SET_CTX_PARAMS, store_set_ctx_params, store_set_ctx_params),
    KEYLESS_FN(STORE_SETTABLE_CTX_PARAMS, store_settable_ctx_params, store_settable_ctx_params),
    {0, nullptr}};

} // namespace keyless::provider
