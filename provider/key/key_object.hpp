// The one key object behind every keyless operation: a URI and a cached public key. Public
// queries (size, parameters, match, export) are answered locally; private operations go to the
// keyserver named by the URI.
#pragma once

#include "errors.hpp"
#include "ski.hpp"
#include "tls_scheme.hpp"
#include "uri.hpp"

#include <memory>
#include <optional>

namespace keyless::provider {

class KeyObject {
  public:
    // Where the public key came from: a stub file, or the keyserver (GetPublicKey) at load time.
    // It decides what a key-mismatch error tells the user to do.
    enum class Origin { Stub, Keyserver };

    // Parses the URI and the SPKI (in the client's private library context). No network.
    // Throws KeylessError (bad URI, bad public key, unusable client settings).
    static std::shared_ptr<const KeyObject> create(ProviderContext* prov, const std::string& uri,
                                                   ByteView spki_der, Origin origin);
    // Fetches the public key from the keyserver (GetPublicKey), then create().
    static std::shared_ptr<const KeyObject> fetch(ProviderContext* prov, const std::string& uri);

    // Asks the keyserver named by the URI for an operation on this key, carrying the SKI of the
    // public key held here (so the keyserver refuses to sign with another key of the same name),
    // pausing an OpenSSL ASYNC job or blocking until it is done; returns the response payload or
    // throws KeylessError whose message names the URI, `what` was attempted and why it failed.
    Bytes ask(protocol::Operation request, const char* what) const;
    // The same for a keyless extension request, with the same operation in gokeyless's form when
    // it has one: each keyserver of the URI gets the form it knows, in one call. The answer says
    // which form was answered. A keyserver without the extensions, for an operation with no
    // gokeyless form, fails naming the keyserver and the key.
    struct Answer {
        Bytes payload;
        bool by_fallback = false;
    };
    Answer ask(protocol::Operation request, std::optional<protocol::Operation> gokeyless_form,
               const char* what) const;

    ProviderContext* provider() const { return prov_; }
    const std::string& uri_text() const { return uri_text_; }
    const KeyUri& uri() const { return uri_; }
    EVP_PKEY* public_key() const { return pub_.get(); }
    const Bytes& spki() const { return spki_; }
    const Ski& ski() const { return ski_; } // lets a gokeyless keyserver find the key
    tls::KeyKind kind() const { return kind_; }
    // The keymgmt name OpenSSL knows the key type by.
    const char* type_name() const { return tls::key_type_name(kind_); }
    size_t max_signature_size() const;
    Origin origin() const { return origin_; }

  private:
    std::shared_ptr<client::Call> send(protocol::Operation request,
                                       std::optional<protocol::Operation> fallback) const;

    ProviderContext* prov_ = nullptr;
    std::string uri_text_;
    KeyUri uri_;
    Bytes spki_;
    Ski ski_{};
    ossl::Pkey pub_;
    tls::KeyKind kind_ = tls::KeyKind::RSA;
    Origin origin_ = Origin::Stub;
};

// What OpenSSL holds as keydata: a counted reference to a key object.
struct KeyHandle {
    std::shared_ptr<const KeyObject> key;
};

// A finished call's payload, or a KeylessError whose message names the URI, what was attempted
// (`what`) and why it failed (unreachable, timeout, TLS, key not found, denied, ...).
// `key`, when given, words a key-mismatch error for where its public key came from.
Bytes payload_or_throw(const KeyUri& uri, const client::Call& call, const char* what,
                       const KeyObject* key = nullptr);

// Throws KeylessError if the provider's settings were invalid (reported at first use).
void check_settings(const ProviderContext* prov);

} // namespace keyless::provider
