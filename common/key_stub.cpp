#include "key_stub.hpp"

#include "ossl.hpp"

#include <openssl/asn1.h>
#include <openssl/pem.h>

#include <memory>

namespace keyless {

namespace {

using Asn1Integer = std::unique_ptr<ASN1_INTEGER, ossl::Deleter<ASN1_INTEGER_free>>;
using Asn1Utf8 = std::unique_ptr<ASN1_UTF8STRING, ossl::Deleter<ASN1_UTF8STRING_free>>;

template <typename T, typename F> Bytes to_der(T* obj, F i2d) {
    int len = i2d(obj, nullptr);
    if (len <= 0) throw StubError("cannot encode key stub");
    Bytes out(static_cast<size_t>(len));
    unsigned char* p = out.data();
    i2d(obj, &p);
    return out;
}

} // namespace

Bytes encode_stub_der(const KeyStub& stub) {
    Asn1Integer version(ASN1_INTEGER_new());
    Asn1Utf8 uri(ASN1_UTF8STRING_new());
    if (!version || !uri || !ASN1_INTEGER_set(version.get(), kStubVersion) ||
        !ASN1_STRING_set(uri.get(), stub.uri.data(), static_cast<int>(stub.uri.size())))
        throw StubError("cannot encode key stub");
    Bytes content = to_der(version.get(), i2d_ASN1_INTEGER);
    Bytes uri_der = to_der(uri.get(), i2d_ASN1_UTF8STRING);
    content.insert(content.end(), uri_der.begin(), uri_der.end());
    content.insert(content.end(), stub.spki_der.begin(), stub.spki_der.end());
    int total = ASN1_object_size(1, static_cast<int>(content.size()), V_ASN1_SEQUENCE);
    Bytes out(static_cast<size_t>(total));
    unsigned char* p = out.data();
    ASN1_put_object(&p, 1, static_cast<int>(content.size()), V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    std::copy(content.begin(), content.end(), p);
    return out;
}

KeyStub decode_stub_der(ByteView der) {
    ossl::ErrorScope errors; // a caller probing "is this a stub?" must not see our errors
    const unsigned char* p = der.data();
    long len = 0;
    int tag = 0, cls = 0;
    int ret = ASN1_get_object(&p, &len, &tag, &cls, static_cast<long>(der.size()));
    if ((ret & 0x80) || tag != V_ASN1_SEQUENCE || cls != V_ASN1_UNIVERSAL ||
        p + len != der.data() + der.size())
        throw StubError("key stub is not a DER SEQUENCE");
    const unsigned char* end = p + len;
    Asn1Integer version(d2i_ASN1_INTEGER(nullptr, &p, end - p));
    if (!version || ASN1_INTEGER_get(version.get()) != kStubVersion)
        throw StubError("key stub version is not 1");
    Asn1Utf8 uri(d2i_ASN1_UTF8STRING(nullptr, &p, end - p));
    if (!uri) throw StubError("key stub has no URI");
    KeyStub stub;
    stub.uri.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri.get())),
                    static_cast<size_t>(ASN1_STRING_length(uri.get())));
    // The SPKI is kept as DER; whoever needs the key parses it in its own library context.
    const unsigned char* spki_start = p;
    long spki_len = 0;
    ret = ASN1_get_object(&p, &spki_len, &tag, &cls, end - p);
    if ((ret & 0x80) || tag != V_ASN1_SEQUENCE || p + spki_len != end)
        throw StubError("key stub has no SubjectPublicKeyInfo");
    stub.spki_der.assign(spki_start, end);
    return stub;
}

std::string encode_stub_pem(const KeyStub& stub) {
    Bytes der = encode_stub_der(stub);
    ossl::Bio mem(BIO_new(BIO_s_mem()));
    if (!mem || PEM_write_bio(mem.get(), std::string(kStubPemLabel).c_str(), "", der.data(),
                              static_cast<long>(der.size())) <= 0)
        throw StubError("cannot write key stub PEM");
    char* data = nullptr;
    long n = BIO_get_mem_data(mem.get(), &data);
    return std::string(data, static_cast<size_t>(n));
}

} // namespace keyless
