// ENCODERs that refuse, with a message, to write or print a keyless private key: its private half
// is on the keyserver. Without them OpenSSL fails silently (`openssl pkey -in keyless:...` exits 1
// and leaves an empty file). Public-key encodings are not claimed here (does_selection), so
// OpenSSL's own encoders write those from the exported public half.
#include "dispatch_entry.hpp"
#include "dispatch_tables.hpp"
#include "key/key_object.hpp"

#include <openssl/core_names.h>

namespace keyless::provider {

namespace {

void* encoder_newctx(void* provctx) {
    return provctx; // nothing to keep per encoding
}

void encoder_freectx(void*) {}

int encoder_does_selection(void*, int selection) {
    return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0;
}

int encoder_encode(void* vctx, OSSL_CORE_BIO*, const void* keydata, const OSSL_PARAM[], int,
                   OSSL_PASSPHRASE_CALLBACK*, void*) {
    auto* prov = static_cast<ProviderContext*>(vctx);
    const auto* handle = static_cast<const KeyHandle*>(keydata);
    std::string uri = handle && handle->key ? handle->key->uri_text() + ": " : std::string();
    raise_error(prov, KEYLESS_R_PRIVATE_KEY_REMOTE,
                uri + "the private key is held by the keyserver and cannot be exported or "
                      "printed (-pubout or -text_pub show the public key)",
                "keyless_encode");
    return 0;
}

} // namespace

const OSSL_DISPATCH private_key_refusal_encoder_functions[] = {
    KEYLESS_FN(ENCODER_NEWCTX, encoder_newctx, encoder_newctx),
    KEYLESS_FN(ENCODER_FREECTX, encoder_freectx, encoder_freectx),
    KEYLESS_FN(ENCODER_DOES_SELECTION, encoder_does_selection, encoder_does_selection),
    KEYLESS_FN(ENCODER_ENCODE, encoder_encode, encoder_encode),
    {0, nullptr}};

} // namespace keyless::provider
