// Who may use a key, and for what. Pure logic: identities are extracted from the peer
// certificate by the transport, decisions are made here.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/x509.h>

namespace keyless::keyserver {

enum class Permission { SignTLS, SignTLSClient, SignDigest, RSADecryptTLS, RSADecryptRaw };
std::string_view to_string(Permission p);
// Parses "sign-tls", "sign-tls-client", "sign-digest", "rsa-decrypt-tls", "rsa-decrypt-raw"; throws
// std::invalid_argument naming the accepted values otherwise.
Permission parse_permission(std::string_view name);

// What the mTLS peer proved about itself.
// The first commonName of the certificate's subject, as UTF-8 ("" when it has none).
std::string subject_common_name(const X509* cert);

struct ClientIdentity {
    std::string common_name;
    std::vector<std::string> sans; // DNS names, IPs, URIs, e-mail addresses, as text
    std::string spki_sha256;       // lowercase hex
    std::string display() const;   // for logs: CN, else first SAN, else SPKI fingerprint
    static ClientIdentity from_certificate(X509* cert);
};

// One selector of a key's client list: "*" (any authenticated client), "cn:NAME", "san:VALUE" or
// "spki-sha256:HEX".
class ClientSelector {
  public:
    static ClientSelector parse(std::string_view text); // throws std::invalid_argument
    bool matches(const ClientIdentity& id) const;
    const std::string& text() const { return text_; }

  private:
    enum class Kind { Any, CommonName, San, SpkiSha256 } kind_ = Kind::Any;
    std::string value_;
    std::string text_;
};

struct KeyPolicy {
    std::set<Permission> allow{Permission::SignTLS}; // least privilege by default
    std::vector<ClientSelector> clients{ClientSelector::parse("*")};
    bool tls12_dhe = false;  // sign-tls also signs TLS 1.2 DHE parameters (RFC 7919 groups)
    bool allow_sha1 = false; // sign-tls also signs TLS 1.2 parameters with a SHA-1 scheme

    bool client_allowed(const ClientIdentity& id) const;
    bool permits(const ClientIdentity& id, Permission p) const {
        return client_allowed(id) && allow.count(p) != 0;
    }
};

// Every key's policy: an entry per named key, the default for the rest.
struct Policies {
    KeyPolicy default_policy; // for keys without an entry in `keys`
    std::map<std::string, KeyPolicy> key_policies;

    const KeyPolicy& policy_for(const std::string& key_name) const {
        auto it = key_policies.find(key_name);
        return it == key_policies.end() ? default_policy : it->second;
    }
};

} // namespace keyless::keyserver
