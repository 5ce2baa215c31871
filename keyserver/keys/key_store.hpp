// The private keys a keyserver serves: every PEM private key in a directory, named by file stem
// and indexed by name and by SKI.
#pragma once

#include "keys/key_operations.hpp"
#include "ossl.hpp"
#include "ski.hpp"
#include "tls_scheme.hpp"
#include "uri.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace keyless::keyserver {

struct Key {
    std::string name;
    std::string path; // the PEM file, or the PKCS#11 URI
    // The public key, and what it is. For a file key the same object its FileKey signs with;
    // never logged, never serialised except as its public part.
    ossl::Pkey pkey;
    tls::KeyKind kind;
    int bits = 0;
    std::string description; // e.g. "RSA-2048", "EC P-256"
    std::string curve;       // EC keys: "P-256", "P-384" or "P-521"
    Ski ski{};
    Bytes spki;                               // DER SubjectPublicKeyInfo
    std::shared_ptr<const KeyOperations> ops; // where its private operations run
    std::string source_details;               // PKCS#11: the token and its mechanisms (--check)
    bool raw_decrypt_unavailable = false;     // the token does not decrypt raw RSA with it

    // RSA keys: what keys rsa-decrypt-tls's implicit rejection (never logged). Derived on first
    // use, not at load: it costs an RSA signature, and most keys are never asked to decrypt.
    mutable std::once_flag rejection_once;
    mutable Bytes rejection_secret;
};

// Sets kind, bits, description, curve, spki and ski from `key.pkey`; returns why the key cannot
// be served (an unsupported type or size), or "".
std::string describe_key(Key& key);

// Whether a PEM file holds an encrypted private key ("BEGIN ENCRYPTED PRIVATE KEY" or a
// "Proc-Type: 4,ENCRYPTED" header), which the keyserver refuses rather than prompt for.
bool is_encrypted_pem(const std::string& path);

// A key that could not be loaded: its name and why (the reason names the file or URI).
struct UnavailableKey {
    std::string name;
    std::string reason;
};

// Every problem found while loading, one message per file, naming the file.
class KeyStoreError : public std::runtime_error {
  public:
    KeyStoreError(std::vector<std::string> problems);
    const std::vector<std::string>& problems() const { return problems_; }

  private:
    std::vector<std::string> problems_;
};

class KeyStore {
  public:
    // Loads *.pem and *.key files. A bad file (unreadable, not a private key, an unsupported
    // type or size, readable by group/others or owned by another user than the keyserver's or
    // root, a name another file has) goes to `unavailable` when it is given, and otherwise is
    // one of the problems of the KeyStoreError thrown after every file was read. A directory
    // that cannot be read, or that group/others can write (unless allowed), always throws.
    static KeyStore load_directory(const std::string& dir, bool allow_insecure_permissions,
                                   std::vector<UnavailableKey>* unavailable = nullptr);

    // Adds a key from another source (a PKCS#11 token); throws KeyStoreError if its name is
    // taken.
    void add(std::shared_ptr<const Key> key);
    std::shared_ptr<const Key> by_name(const std::string& name) const;
    std::shared_ptr<const Key> by_ski(const Ski& ski) const;
    const std::vector<std::shared_ptr<const Key>>& keys() const { return keys_; }

  private:
    std::vector<std::shared_ptr<const Key>> keys_;
    std::map<std::string, std::shared_ptr<const Key>, std::less<>> by_name_;
    std::map<Ski, std::shared_ptr<const Key>> by_ski_;
};

} // namespace keyless::keyserver
