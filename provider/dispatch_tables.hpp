// The algorithm implementations keyless.so registers, one table per operation and key type.
#pragma once

#include <openssl/core_dispatch.h>

namespace keyless::provider {

extern const OSSL_DISPATCH rsa_keymgmt_functions[];
extern const OSSL_DISPATCH ec_keymgmt_functions[];
extern const OSSL_DISPATCH ed25519_keymgmt_functions[];
extern const OSSL_DISPATCH ed448_keymgmt_functions[];
extern const OSSL_DISPATCH mldsa44_keymgmt_functions[];
extern const OSSL_DISPATCH mldsa65_keymgmt_functions[];
extern const OSSL_DISPATCH mldsa87_keymgmt_functions[];
extern const OSSL_DISPATCH rsa_signature_functions[];
extern const OSSL_DISPATCH ecdsa_signature_functions[];
extern const OSSL_DISPATCH ed25519_signature_functions[];
extern const OSSL_DISPATCH ed448_signature_functions[];
extern const OSSL_DISPATCH mldsa44_signature_functions[];
extern const OSSL_DISPATCH mldsa65_signature_functions[];
extern const OSSL_DISPATCH mldsa87_signature_functions[];
extern const OSSL_DISPATCH rsa_asym_cipher_functions[];
extern const OSSL_DISPATCH store_functions[];
extern const OSSL_DISPATCH pem_to_der_decoder_functions[];
extern const OSSL_DISPATCH der_to_rsa_decoder_functions[];
extern const OSSL_DISPATCH der_to_ec_decoder_functions[];
extern const OSSL_DISPATCH der_to_ed25519_decoder_functions[];
extern const OSSL_DISPATCH der_to_ed448_decoder_functions[];
extern const OSSL_DISPATCH der_to_mldsa44_decoder_functions[];
extern const OSSL_DISPATCH der_to_mldsa65_decoder_functions[];
extern const OSSL_DISPATCH der_to_mldsa87_decoder_functions[];
extern const OSSL_DISPATCH private_key_refusal_encoder_functions[];

} // namespace keyless::provider
