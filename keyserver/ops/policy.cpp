#include "ops/policy.hpp"

#include "ossl.hpp"
#include "ski.hpp"

#include <arpa/inet.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <stdexcept>

namespace keyless::keyserver {

std::string_view to_string(Permission p) {
    switch (p) {
    case Permission::SignTLS:
        return "sign-tls";
    case Permission::SignTLSClient:
        return "sign-tls-client";
    case Permission::SignDigest:
        return "sign-digest";
    case Permission::RSADecryptTLS:
        return "rsa-decrypt-tls";
    case Permission::RSADecryptRaw:
        return "rsa-decrypt-raw";
    }
    return "?";
}

Permission parse_permission(std::string_view name) {
    for (auto p : {Permission::SignTLS, Permission::SignTLSClient, Permission::SignDigest,
                   Permission::RSADecryptTLS, Permission::RSADecryptRaw})
        if (to_string(p) == name) return p;
    throw std::invalid_argument("unknown operation '" + std::string(name) +
                                "' (expected sign-tls, sign-tls-client, sign-digest, "
                                "rsa-decrypt-tls or rsa-decrypt-raw)");
}

std::string ClientIdentity::display() const {
    if (!common_name.empty()) return common_name;
    if (!sans.empty()) return sans.front();
    return "spki-sha256:" + spki_sha256;
}

namespace {

std::string asn1_text(const ASN1_STRING* s) {
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, s);
    if (len < 0) return {};
    std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
    return out;
}

// ASN.1 strings are opaque from OpenSSL 4.0 on: read them through the accessors.
std::string ip_text(const ASN1_OCTET_STRING* ip) {
    char buf[64] = {};
    int length = ASN1_STRING_length(ip);
    int family = length == 4 ? AF_INET : length == 16 ? AF_INET6 : 0;
    if (family == 0 || !inet_ntop(family, ASN1_STRING_get0_data(ip), buf, sizeof buf)) return {};
    return buf;
}

} // namespace

std::string subject_common_name(const X509* cert) {
    const X509_NAME* subject = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (idx < 0) return {};
    return asn1_text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx)));
}

ClientIdentity ClientIdentity::from_certificate(X509* cert) {
    ClientIdentity id;
    if (!cert) return id;
    id.common_name = subject_common_name(cert);

    auto* names =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
        const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
        switch (gn->type) {
        case GEN_DNS:
            id.sans.push_back(asn1_text(gn->d.dNSName));
            break;
        case GEN_URI:
            id.sans.push_back(asn1_text(gn->d.uniformResourceIdentifier));
            break;
        case GEN_EMAIL:
            id.sans.push_back(asn1_text(gn->d.rfc822Name));
            break;
        case GEN_IPADD:
            id.sans.push_back(ip_text(gn->d.iPAddress));
            break;
        default:
            break;
        }
    }
    GENERAL_NAMES_free(names);

    const X509_PUBKEY* pub = X509_get_X509_PUBKEY(cert);
    int len = i2d_X509_PUBKEY(pub, nullptr);
    if (len > 0) {
        Bytes der(static_cast<size_t>(len));
        unsigned char* p = der.data();
        i2d_X509_PUBKEY(pub, &p);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int md_len = 0;
        if (EVP_Digest(der.data(), der.size(), md, &md_len, EVP_sha256(), nullptr))
            id.spki_sha256 = to_hex({md, md_len});
    }
    return id;
}

ClientSelector ClientSelector::parse(std::string_view text) {
    ClientSelector s;
    s.text_ = std::string(text);
    if (text == "*") return s;
    auto colon = text.find(':');
    std::string_view kind = text.substr(0, colon);
    if (colon == std::string_view::npos || colon + 1 == text.size())
        throw std::invalid_argument("client selector '" + std::string(text) +
                                    "' must be '*', 'cn:NAME', 'san:VALUE' or 'spki-sha256:HEX'");
    s.value_ = std::string(text.substr(colon + 1));
    if (kind == "cn") {
        s.kind_ = Kind::CommonName;
    } else if (kind == "san") {
        s.kind_ = Kind::San;
    } else if (kind == "spki-sha256") {
        s.kind_ = Kind::SpkiSha256;
        std::transform(s.value_.begin(), s.value_.end(), s.value_.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        s.value_.erase(std::remove(s.value_.begin(), s.value_.end(), ':'), s.value_.end());
        if (s.value_.size() != 64 ||
            s.value_.find_first_not_of("0123456789abcdef") != std::string::npos)
            throw std::invalid_argument("client selector '" + std::string(text) +
                                        "': spki-sha256 needs 64 hex digits");
    } else {
        throw std::invalid_argument("client selector '" + std::string(text) +
                                    "' must be '*', 'cn:NAME', 'san:VALUE' or 'spki-sha256:HEX'");
    }
    return s;
}

bool ClientSelector::matches(const ClientIdentity& id) const {
    switch (kind_) {
    case Kind::Any:
        return true;
    case Kind::CommonName:
        return !id.common_name.empty() && id.common_name == value_;
    case Kind::San:
        return std::find(id.sans.begin(), id.sans.end(), value_) != id.sans.end();
    case Kind::SpkiSha256:
        return id.spki_sha256 == value_;
    }
    return false;
}

bool KeyPolicy::client_allowed(const ClientIdentity& id) const {
    return std::any_of(clients.begin(), clients.end(),
                       [&](const ClientSelector& s) { return s.matches(id); });
}

} // namespace keyless::keyserver
