// Handing a key object to OpenSSL from a STORE or DECODER: the object is passed by reference and
// OpenSSL calls our KEYMGMT load with it, inside the callback.
#pragma once

#include "key/key_object.hpp"

#include <openssl/core_names.h>
#include <openssl/core_object.h>

namespace keyless::provider {

inline int pass_key(const std::shared_ptr<const KeyObject>& key, OSSL_CALLBACK* cb, void* cbarg) {
    KeyHandle handle{key}; // outlives the callback, which is where keymgmt load copies it
    int object_type = OSSL_OBJECT_PKEY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &object_type),
        OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                         const_cast<char*>(key->type_name()), 0),
        OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &handle, sizeof handle),
        OSSL_PARAM_construct_end()};
    return cb(params, cbarg);
}

// Stores and decoders deliberately have no export_object: OpenSSL would use it to import the
// key's public half into another provider's keymgmt and hand out a public-only key, instead of
// loading ours (OpenSSL 3.0 store_result.c tries a keymgmt fetched by name first).

} // namespace keyless::provider
