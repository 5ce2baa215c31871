#include "signatures.hpp"

#include "tls_scheme.hpp"

#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <string>

namespace keyless::test {

ossl::Pkey from_spki(const Bytes& der) {
    const unsigned char* p = der.data();
    return ossl::Pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
}

bool verify_message(EVP_PKEY* pub, uint16_t scheme_code, ByteView msg, ByteView sig) {
    auto scheme = tls::scheme_info(scheme_code);
    if (!scheme) return false;
    ossl::MdCtx ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    if (EVP_DigestVerifyInit_ex(ctx.get(), &pctx, scheme->digest_name(), nullptr, nullptr, pub,
                                nullptr) != 1)
        return false;
    if (scheme->padding == tls::Padding::PSS) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    return EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), msg.data(), msg.size()) == 1;
}

} // namespace keyless::test
