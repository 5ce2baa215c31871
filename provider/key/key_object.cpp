#include "key/key_object.hpp"

#include "key/remote_call.hpp"

#include <openssl/x509.h>

namespace keyless::provider {

using protocol::ErrorCode;
using protocol::Opcode;
using protocol::Operation;

void check_settings(const ProviderContext* prov) {
    if (!prov->settings_error.empty())
        throw KeylessError(KEYLESS_R_BAD_CONFIG, prov->settings_error);
}

namespace {

client::Client& ready_client(ProviderContext* prov, const std::string& uri) {
    check_settings(prov);
    try {
        prov->client->prepare();
    } catch (const client::SettingsError& e) {
        throw KeylessError(KEYLESS_R_BAD_CONFIG, uri + ": " + e.what());
    }
    return *prov->client;
}

KeyUri parse(const std::string& uri) {
    try {
        return parse_key_uri(uri);
    } catch (const UriError& e) {
        throw KeylessError(KEYLESS_R_BAD_URI, e.what());
    }
}

} // namespace

namespace {

// Why a public key did not decode: an ML-DSA key on an OpenSSL without ML-DSA says so.
std::string undecodable_reason(ByteView spki_der, std::string openssl_reason) {
    const unsigned char* p = spki_der.data();
    ossl::X509PubkeyPtr pub(d2i_X509_PUBKEY(nullptr, &p, static_cast<long>(spki_der.size())));
    ERR_clear_error();
    ASN1_OBJECT* oid = nullptr;
    char text[80] = {};
    if (pub && X509_PUBKEY_get0_param(&oid, nullptr, nullptr, nullptr, pub.get()) == 1 && oid)
        OBJ_obj2txt(text, sizeof text, oid, 1);
    if (tls::ml_dsa_of_oid(text) && OpenSSL_version_num() < 0x30500000L)
        return "an ML-DSA key needs OpenSSL 3.5 or later (this is OpenSSL " +
               std::string(OpenSSL_version(OPENSSL_VERSION_STRING)) + ")";
    return openssl_reason;
}

} // namespace

std::shared_ptr<const KeyObject> KeyObject::create(ProviderContext* prov, const std::string& uri,
                                                   ByteView spki_der, Origin origin) {
    auto key = std::make_shared<KeyObject>();
    key->prov_ = prov;
    key->origin_ = origin;
    key->uri_ = parse(uri);
    key->uri_text_ = key->uri_.to_string();
    key->spki_.assign(spki_der.begin(), spki_der.end());
    OSSL_LIB_CTX* libctx = ready_client(prov, uri).libctx();
    ossl::ErrorScope errors;
    const unsigned char* p = spki_der.data();
    key->pub_.reset(
        d2i_PUBKEY_ex(nullptr, &p, static_cast<long>(spki_der.size()), libctx, nullptr));
    if (!key->pub_)
        throw KeylessError(KEYLESS_R_BAD_STUB, uri + ": public key does not decode: " +
                                                   undecodable_reason(spki_der, errors.text()));
    key->ski_ = compute_ski_from_spki(spki_der);
    for (auto kind : tls::kAllKeyKinds) {
        if (EVP_PKEY_is_a(key->pub_.get(), tls::key_type_name(kind))) {
            key->kind_ = kind;
            return key;
        }
    }
    throw KeylessError(KEYLESS_R_UNSUPPORTED,
                       uri + ": key type " + EVP_PKEY_get0_type_name(key->pub_.get()) +
                           " is not supported (RSA, EC, Ed25519, Ed448 and ML-DSA are)");
}

std::shared_ptr<const KeyObject> KeyObject::fetch(ProviderContext* prov, const std::string& uri) {
    KeyUri parsed = parse(uri);
    auto call = ready_client(prov, uri).run(parsed, Operation::make(Opcode::GetPublicKey));
    return create(prov, uri, payload_or_throw(parsed, *call, "fetching the public key"),
                  Origin::Keyserver);
}

std::shared_ptr<client::Call> KeyObject::send(Operation request,
                                              std::optional<Operation> fallback) const {
    check_settings(prov_);
    if (!request.ski) request.ski = ski_;
    if (fallback && !fallback->ski) fallback->ski = ski_;
    return remote_call(*prov_->client, uri_, std::move(request), std::move(fallback));
}

Bytes KeyObject::ask(Operation request, const char* what) const {
    auto call = send(std::move(request), std::nullopt);
    return payload_or_throw(uri_, *call, what, this);
}

Bytes payload_or_throw(const KeyUri& uri, const client::Call& call, const char* what,
                       const KeyObject* key) {
    // Messages are built only for a failure: a call that succeeds formats nothing.
    auto failed = [&] {
        return (key ? key->uri_text() : uri.to_string()) + ": " + what + " failed: ";
    };
    auto where = [&] { return " (keyserver " + call.last_endpoint + ")"; };
    switch (call.failure) {
    case client::Failure::None:
        break;
    case client::Failure::Unreachable:
        throw KeylessError(KEYLESS_R_KEYSERVER_UNREACHABLE, failed() + call.message);
    case client::Failure::TlsFailure:
        throw KeylessError(KEYLESS_R_KEYSERVER_TLS, failed() + call.message);
    case client::Failure::Timeout:
        throw KeylessError(KEYLESS_R_KEYSERVER_TIMEOUT, failed() + call.message);
    case client::Failure::Protocol:
        throw KeylessError(KEYLESS_R_KEYSERVER_ERROR, failed() + call.message);
    }
    const Operation& reply = *call.response;
    ErrorCode code = protocol::error_of(reply);
    switch (code) {
    case ErrorCode::None:
        if (!reply.is(Opcode::Response))
            throw KeylessError(KEYLESS_R_KEYSERVER_ERROR, failed() + "unexpected reply" + where());
        return reply.payload;
    case ErrorCode::KeyNotFound:
        throw KeylessError(KEYLESS_R_KEY_NOT_FOUND,
                           failed() + "key '" + uri.key_id +
                               "' not found (or this edge's certificate may not use it)" + where());
    case ErrorCode::PolicyDenied:
        throw KeylessError(KEYLESS_R_DENIED, failed() +
                                                 "denied by the keyserver's policy for key '" +
                                                 uri.key_id + "'" + where());
    case ErrorCode::Overloaded:
        throw KeylessError(KEYLESS_R_KEYSERVER_ERROR,
                           failed() + "keyserver " + call.last_endpoint +
                               " is overloaded (rate limit or full buffers; no other keyserver "
                               "of the URI had room)");
    case ErrorCode::KeyMismatch:
        throw KeylessError(
            KEYLESS_R_KEY_MISMATCH,
            failed() + "the keyserver's key '" + uri.key_id + "' is not the key " +
                (key && key->origin() == KeyObject::Origin::Keyserver
                     ? "this process loaded (rotated? reload or restart it to load the new key)"
                     : "in this stub (rotated? refresh it with keyless-tool stub)") +
                where());
    default:
        throw KeylessError(KEYLESS_R_KEYSERVER_ERROR,
                           failed() + std::string(protocol::to_string(code)) + where());
    }
}

KeyObject::Answer KeyObject::ask(Operation request, std::optional<Operation> gokeyless_form,
                                 const char* what) const {
    auto call = send(std::move(request), std::move(gokeyless_form));
    if (!call->sent_fallback && call->response &&
        protocol::error_of(*call->response) == ErrorCode::BadOpcode)
        throw KeylessError(KEYLESS_R_UNSUPPORTED,
                           uri_text_ + ": " + what + " failed: keyserver " + call->last_endpoint +
                               " does not know keyless's extensions (a gokeyless keyserver signs "
                               "RSA, ECDSA and Ed25519 only), and this operation on a " +
                               type_name() + " key has no gokeyless form: key '" + uri_.key_id +
                               "' needs a keyless keyserver");
    return {payload_or_throw(uri_, *call, what, this), call->sent_fallback};
}

size_t KeyObject::max_signature_size() const {
    return static_cast<size_t>(EVP_PKEY_get_size(pub_.get()));
}

} // namespace keyless::provider
