// RAII owners for the OpenSSL objects keyless uses. Every OpenSSL object we create lives in one
// of these, so an early return or an exception never leaks it.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

namespace keyless::ossl {

template <auto Free> struct Deleter {
    template <typename T> void operator()(T* p) const noexcept { Free(p); }
};

using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using Md = std::unique_ptr<EVP_MD, Deleter<EVP_MD_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using X509PubkeyPtr = std::unique_ptr<X509_PUBKEY, Deleter<X509_PUBKEY_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;
using SslCtx = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using Ssl = std::unique_ptr<SSL, Deleter<SSL_free>>;
using LibCtx = std::unique_ptr<OSSL_LIB_CTX, Deleter<OSSL_LIB_CTX_free>>;
using Bn = std::unique_ptr<BIGNUM, Deleter<BN_free>>;

// A BIGNUM parameter of a key (e.g. OSSL_PKEY_PARAM_FFC_P) as unpadded big-endian bytes; empty
// when the key has no such parameter.
inline std::vector<uint8_t> bn_param(const EVP_PKEY* key, const char* name) {
    BIGNUM* raw = nullptr;
    if (!EVP_PKEY_get_bn_param(key, name, &raw)) return {};
    Bn bn(raw);
    std::vector<uint8_t> out(static_cast<size_t>(BN_num_bytes(bn.get())));
    BN_bn2bin(bn.get(), out.data());
    return out;
}

// The oldest error on this thread's OpenSSL error queue as text (and the queue cleared), for
// messages that say why OpenSSL refused something. Never contains key material.
inline std::string last_error(const char* fallback = "unknown OpenSSL error") {
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return fallback;
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    return buf;
}

// Every error on this thread's queue, oldest first, as "reason: detail" lines (the queue is
// cleared). For tools that report why OpenSSL or the keyless provider refused something.
inline std::string all_errors() {
    std::string out;
    const char* data = nullptr;
    int flags = 0;
    unsigned long code;
    while ((code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0) {
        const char* reason = ERR_reason_error_string(code);
        std::string line = reason ? reason : "error " + std::to_string(ERR_GET_REASON(code));
        if (data && *data && (flags & ERR_TXT_STRING)) line += std::string(": ") + data;
        out += (out.empty() ? "" : "\n") + line;
    }
    return out;
}

// For code that runs inside OpenSSL's own calls (provider callbacks): errors raised during the
// scope are readable with text() and removed at its end, while errors and marks set by the
// caller stay untouched. (Clearing the whole queue there breaks OpenSSL's decoder loops, which
// rely on marks.)
class ErrorScope {
  public:
    ErrorScope() { ERR_set_mark(); }
    ~ErrorScope() { ERR_pop_to_mark(); }
    ErrorScope(const ErrorScope&) = delete;
    ErrorScope& operator=(const ErrorScope&) = delete;
    std::string text(const char* fallback = "unknown OpenSSL error") const {
        unsigned long code = ERR_peek_last_error();
        if (code == 0) return fallback;
        char buf[256];
        ERR_error_string_n(code, buf, sizeof buf);
        return buf;
    }
};

} // namespace keyless::ossl
