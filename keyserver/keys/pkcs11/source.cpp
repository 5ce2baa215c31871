#include "keys/pkcs11/source.hpp"

#include "keys/pkcs11/key.hpp"
#include "keys/pkcs11/mechanisms.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <p11-kit/uri.h>

#include <sys/stat.h>

#include <cstring>
#include <fstream>

namespace keyless::keyserver {

namespace {

using Uri = std::unique_ptr<P11KitUri, ossl::Deleter<p11_kit_uri_free>>;

// The PIN is as secret as a key file: a PIN file others can read or write is refused.
std::string read_pin(const std::string& path, const std::string& uri, bool allow_insecure) {
    std::string file = path.rfind("file:", 0) == 0 ? path.substr(5) : path;
    struct stat st {};
    if (::stat(file.c_str(), &st) == 0 && (st.st_mode & S_IRWXO) && !allow_insecure)
        throw std::runtime_error(uri + ": the PIN file " + file +
                                 " is readable or writable by others (chmod o-rwx, or set "
                                 "allow_insecure_key_permissions)");
    std::ifstream in(file);
    if (!in) throw std::runtime_error(uri + ": cannot read the PIN file " + file);
    std::string pin;
    std::getline(in, pin);
    while (!pin.empty() && (pin.back() == '\r' || pin.back() == ' '))
        pin.pop_back();
    if (pin.empty()) throw std::runtime_error(uri + ": the PIN file " + file + " is empty");
    return pin;
}

Bytes attribute(const Pkcs11Token& token, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                CK_ATTRIBUTE_TYPE type) {
    CK_ATTRIBUTE a{type, nullptr, 0};
    CK_RV rv = token.fn()->C_GetAttributeValue(session, object, &a, 1);
    if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION) return {};
    Bytes value(a.ulValueLen);
    a.pValue = value.data();
    if (token.fn()->C_GetAttributeValue(session, object, &a, 1) != CKR_OK) return {};
    value.resize(a.ulValueLen);
    return value;
}

template <typename T>
T scalar_attribute(const Pkcs11Token& token, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                   CK_ATTRIBUTE_TYPE type, T otherwise) {
    Bytes v = attribute(token, session, object, type);
    if (v.size() != sizeof(T)) return otherwise;
    T out;
    std::memcpy(&out, v.data(), sizeof out);
    return out;
}

// CKA_EC_POINT is DER OCTET STRING around the point (some tokens give it bare).
Bytes unwrap_octet_string(const Bytes& der) {
    const unsigned char* p = der.data();
    std::unique_ptr<ASN1_OCTET_STRING, ossl::Deleter<ASN1_OCTET_STRING_free>> os(
        d2i_ASN1_OCTET_STRING(nullptr, &p, static_cast<long>(der.size())));
    if (!os || p != der.data() + der.size()) return der;
    return Bytes(ASN1_STRING_get0_data(os.get()),
                 ASN1_STRING_get0_data(os.get()) + ASN1_STRING_length(os.get()));
}

using ParamBuilder = std::unique_ptr<OSSL_PARAM_BLD, ossl::Deleter<OSSL_PARAM_BLD_free>>;

// A public key of `type` ("EC", "RSA") from the parameters in `bld`; null if they do not make one.
ossl::Pkey public_key_from(const char* type, OSSL_PARAM_BLD* bld) {
    std::unique_ptr<OSSL_PARAM, ossl::Deleter<OSSL_PARAM_free>> built(OSSL_PARAM_BLD_to_param(bld));
    ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* key = nullptr;
    if (!built || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
        EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, built.get()) <= 0)
        return nullptr;
    return ossl::Pkey(key);
}

// The public key from CKA_EC_PARAMS (a named curve's OID, or Ed25519's or Ed448's OID or
// PrintableString "edwards25519"/"edwards448") and CKA_EC_POINT; null if not one we serve.
ossl::Pkey ec_public_key(const Bytes& params, const Bytes& point_der) {
    Bytes point = unwrap_octet_string(point_der);
    const unsigned char* p = params.data();
    std::unique_ptr<ASN1_OBJECT, ossl::Deleter<ASN1_OBJECT_free>> oid(
        d2i_ASN1_OBJECT(nullptr, &p, static_cast<long>(params.size())));
    int nid = oid ? OBJ_obj2nid(oid.get()) : NID_undef;
    std::string printable(params.begin(), params.end());
    if (nid == NID_ED25519 || printable.find("edwards25519") != std::string::npos)
        return ossl::Pkey(
            EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, point.data(), point.size()));
    if (nid == NID_ED448 || printable.find("edwards448") != std::string::npos)
        return ossl::Pkey(
            EVP_PKEY_new_raw_public_key(EVP_PKEY_ED448, nullptr, point.data(), point.size()));
    if (nid == NID_undef) return nullptr;
    ParamBuilder bld(OSSL_PARAM_BLD_new());
    OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, OBJ_nid2sn(nid), 0);
    OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                     point.size());
    return public_key_from("EC", bld.get());
}

ossl::Pkey rsa_public_key(const Bytes& modulus, const Bytes& exponent) {
    ossl::Bn n(BN_bin2bn(modulus.data(), static_cast<int>(modulus.size()), nullptr));
    ossl::Bn e(BN_bin2bn(exponent.data(), static_cast<int>(exponent.size()), nullptr));
    ParamBuilder bld(OSSL_PARAM_BLD_new());
    OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get());
    OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get());
    return public_key_from("RSA", bld.get());
}

// An ML-DSA public key from its CKA_PARAMETER_SET and CKA_VALUE (the FIPS 204 encoding); null
// before OpenSSL 3.5, which has no ML-DSA.
ossl::Pkey ml_dsa_public_key(CK_ULONG parameter_set, const Bytes& value) {
    auto kind = p11::ml_dsa_kind(parameter_set);
    if (!kind || value.empty()) return nullptr;
    return ossl::Pkey(EVP_PKEY_new_raw_public_key_ex(nullptr, tls::key_type_name(*kind), nullptr,
                                                     value.data(), value.size()));
}

// The public key of the private key `object`: its public key object, else a certificate with
// the same CKA_ID, else (RSA) the private key's own modulus and exponent.
ossl::Pkey public_key(const Pkcs11Token& token, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                      CK_KEY_TYPE type, const Bytes& id, const std::string& label) {
    CK_OBJECT_HANDLE pub = find_object(token, session, CKO_PUBLIC_KEY, id, id.empty() ? label : "");
    if (pub != CK_INVALID_HANDLE) {
        if (type == CKK_RSA)
            return rsa_public_key(attribute(token, session, pub, CKA_MODULUS),
                                  attribute(token, session, pub, CKA_PUBLIC_EXPONENT));
        if (type == p11::key_type_ml_dsa)
            return ml_dsa_public_key(
                scalar_attribute<CK_ULONG>(token, session, pub, p11::attribute_parameter_set, 0),
                attribute(token, session, pub, CKA_VALUE));
        return ec_public_key(attribute(token, session, pub, CKA_EC_PARAMS),
                             attribute(token, session, pub, CKA_EC_POINT));
    }
    CK_OBJECT_HANDLE cert =
        find_object(token, session, CKO_CERTIFICATE, id, id.empty() ? label : "");
    if (cert != CK_INVALID_HANDLE) {
        Bytes der = attribute(token, session, cert, CKA_VALUE);
        const unsigned char* p = der.data();
        ossl::X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
        if (x) return ossl::Pkey(X509_get_pubkey(x.get()));
    }
    if (type == CKK_RSA)
        return rsa_public_key(attribute(token, session, object, CKA_MODULUS),
                              attribute(token, session, object, CKA_PUBLIC_EXPONENT));
    return nullptr;
}

} // namespace

std::shared_ptr<Pkcs11Module> Pkcs11Registry::module(const std::string& path) {
    auto& m = modules_[path];
    if (!m) {
        try {
            m = std::make_shared<Pkcs11Module>(path);
        } catch (...) {
            modules_.erase(path);
            throw;
        }
    }
    return m;
}

namespace {

// The PIN for the token of `uri`: its pin-value, its pin-source, else pkcs11.pin_file.
std::string pin_for(P11KitUri* uri, const std::string& text, const Pkcs11Settings& settings) {
    if (const char* value = p11_kit_uri_get_pin_value(uri)) return value;
    if (const char* source = p11_kit_uri_get_pin_source(uri))
        return read_pin(source, text, settings.allow_insecure_permissions);
    if (!settings.pin_file.empty())
        return read_pin(settings.pin_file, text, settings.allow_insecure_permissions);
    throw std::runtime_error(text + ": no PIN (set pkcs11.pin_file, or pin-source in the URI)");
}

// The private key object the URI names, by id= and/or object=.
struct ObjectName {
    Bytes id;
    std::string label;
};

ObjectName object_named(P11KitUri* uri, const std::string& text) {
    ObjectName name;
    if (CK_ATTRIBUTE* a = p11_kit_uri_get_attribute(uri, CKA_ID))
        name.id.assign(static_cast<uint8_t*>(a->pValue),
                       static_cast<uint8_t*>(a->pValue) + a->ulValueLen);
    if (CK_ATTRIBUTE* a = p11_kit_uri_get_attribute(uri, CKA_LABEL))
        name.label.assign(static_cast<char*>(a->pValue), a->ulValueLen);
    if (name.id.empty() && name.label.empty())
        throw std::runtime_error(text + ": name the key with object= or id=");
    return name;
}

// The one slot of `mod` whose token the URI matches, with its label.
std::pair<CK_SLOT_ID, std::string> matching_slot(Pkcs11Module& mod, P11KitUri* uri,
                                                 const std::string& text, const std::string& path) {
    CK_ULONG count = 0;
    CK_RV rv = mod.fn()->C_GetSlotList(CK_TRUE, nullptr, &count);
    std::vector<CK_SLOT_ID> slots(count);
    if (rv == CKR_OK) rv = mod.fn()->C_GetSlotList(CK_TRUE, slots.data(), &count);
    if (rv != CKR_OK) throw HsmError(text + ": " + path + ": cannot list slots", rv);
    slots.resize(count);
    std::vector<std::pair<CK_SLOT_ID, std::string>> matching;
    std::string seen;
    for (CK_SLOT_ID slot : slots) {
        CK_TOKEN_INFO info{};
        if (mod.fn()->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
        std::string label = pkcs11_text(info.label, sizeof info.label);
        seen += (seen.empty() ? "'" : ", '") + label + "'";
        if (p11_kit_uri_match_token_info(uri, &info)) matching.emplace_back(slot, label);
    }
    if (matching.empty())
        throw HsmError(text + ": no token in " + path +
                       " matches (tokens present: " + (seen.empty() ? "none" : seen) + ")");
    if (matching.size() > 1)
        throw HsmError(text + ": several tokens in " + path + " match; name one with token=");
    return matching.front();
}

// What the token says of the private key: its public key (into `key`), its id, whether it may
// decrypt. Throws naming the URI when the object or its public key cannot be found or used.
bool read_private_key(Pkcs11Token& token, const std::string& text, ObjectName& object, Key& key) {
    CK_KEY_TYPE type = CKK_VENDOR_DEFINED;
    bool can_decrypt = false;
    token.with_session([&](CK_SESSION_HANDLE session) {
        CK_OBJECT_HANDLE handle =
            find_object(token, session, CKO_PRIVATE_KEY, object.id, object.label);
        if (handle == CK_INVALID_HANDLE)
            throw HsmError(text + ": no private key in " + token.name() + " matches");
        if (object.id.empty()) object.id = attribute(token, session, handle, CKA_ID);
        type = scalar_attribute<CK_KEY_TYPE>(token, session, handle, CKA_KEY_TYPE, type);
        can_decrypt = scalar_attribute<CK_BBOOL>(token, session, handle, CKA_DECRYPT, CK_FALSE);
        key.pkey = public_key(token, session, handle, type, object.id, object.label);
    });
    if (!key.pkey && type == p11::key_type_ml_dsa && OpenSSL_version_num() < 0x30500000L)
        throw std::runtime_error(text +
                                 ": an ML-DSA key: ML-DSA needs a keyserver built with "
                                 "OpenSSL 3.5 or later (this one has " +
                                 OpenSSL_version(OPENSSL_VERSION_STRING) + ")");
    if (!key.pkey)
        throw HsmError(text + ": cannot read the public key of this key from " + token.name() +
                       " (no public key object or certificate with its CKA_ID)");
    if (auto why = describe_key(key); !why.empty()) throw std::runtime_error(text + ": " + why);
    if (auto why = p11::cannot_sign(key.kind, token.signing_mechanisms()); !why.empty())
        throw std::runtime_error(text + " in " + token.name() + ": " + why);
    return can_decrypt;
}

} // namespace

std::shared_ptr<Pkcs11Token> Pkcs11Registry::token(const std::shared_ptr<Pkcs11Module>& mod,
                                                   CK_SLOT_ID slot, const std::string& label,
                                                   const std::string& pin,
                                                   const Pkcs11Settings& settings) {
    std::string key = mod->path() + "\n" + std::to_string(slot) + "\n" + label;
    auto& token = tokens_[key];
    if (token && token->has_pin(pin)) return token;
    token.reset();
    try {
        token = std::make_shared<Pkcs11Token>(mod, slot, label, pin, settings);
    } catch (...) {
        tokens_.erase(key);
        throw;
    }
    return token;
}

std::shared_ptr<Key> Pkcs11Registry::load(const std::string& name, const std::string& text,
                                          const Pkcs11Settings& settings) {
    std::lock_guard lock(mutex_);
    Uri uri(p11_kit_uri_new());
    int parsed = p11_kit_uri_parse(text.c_str(), P11_KIT_URI_FOR_ANY, uri.get());
    if (parsed != P11_KIT_URI_OK)
        throw std::runtime_error(
            "'" + text + "' is not a PKCS#11 URI (RFC 7512): " + p11_kit_uri_message(parsed));
    const char* module_path = p11_kit_uri_get_module_path(uri.get());
    std::string path = module_path ? module_path : settings.module;
    if (path.empty())
        throw std::runtime_error(text + ": no module-path in the URI and no pkcs11.module set");
    std::string pin = pin_for(uri.get(), text, settings);
    auto mod = module(path);
    auto [slot, label] = matching_slot(*mod, uri.get(), text, path);
    auto tok = token(mod, slot, label, pin, settings);
    ObjectName object = object_named(uri.get(), text);

    auto key = std::make_shared<Key>();
    key->name = name;
    key->path = text;
    bool can_decrypt = read_private_key(*tok, text, object, *key);
    size_t half = key->kind == tls::KeyKind::EC
                      ? static_cast<size_t>((EVP_PKEY_get_bits(key->pkey.get()) + 7) / 8)
                      : 0;
    key->ops = std::make_shared<Pkcs11Key>(tok, text, object.id, object.label, key->kind, half);
    key->source_details = tok->name() + ", mechanisms: ";
    auto mechs = tok->mechanisms(key->kind);
    for (size_t i = 0; i < mechs.size(); ++i)
        key->source_details += (i ? ", " : "") + mechs[i];
    key->raw_decrypt_unavailable =
        key->kind == tls::KeyKind::RSA && !(can_decrypt && tok->offers(CKM_RSA_X_509, CKF_DECRYPT));
    return key;
}

} // namespace keyless::keyserver
