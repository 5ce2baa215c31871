#include "keys/key_store.hpp"

#include "keys/file_key.hpp"

#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

namespace keyless::keyserver {

namespace fs = std::filesystem;

KeyStoreError::KeyStoreError(std::vector<std::string> problems)
    : std::runtime_error([&] {
          std::string all;
          for (const auto& p : problems)
              all += (all.empty() ? "" : "\n") + p;
          return all;
      }()),
      problems_(std::move(problems)) {}

bool is_encrypted_pem(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    for (int i = 0; i < 4 && std::getline(in, line); ++i)
        if (line.find("ENCRYPTED") != std::string::npos) return true;
    return false;
}

namespace {

std::string classify(Key& key) {
    EVP_PKEY* p = key.pkey.get();
    key.bits = EVP_PKEY_get_bits(p);
    if (EVP_PKEY_is_a(p, "RSA")) {
        key.kind = tls::KeyKind::RSA;
        key.description = "RSA-" + std::to_string(key.bits);
        if (key.bits < 2048 || key.bits > 4096)
            return "RSA key of " + std::to_string(key.bits) + " bits (supported: 2048-4096)";
        return {};
    }
    if (EVP_PKEY_is_a(p, "EC")) {
        key.kind = tls::KeyKind::EC;
        char group[64] = {};
        size_t len = 0;
        EVP_PKEY_get_utf8_string_param(p, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len);
        std::string g = group;
        key.description = "EC " + g;
        if (g != "prime256v1" && g != "secp384r1" && g != "secp521r1")
            return "EC key on curve '" + g + "' (supported: P-256, P-384, P-521)";
        static const std::map<std::string, std::string> nist{
            {"prime256v1", "P-256"}, {"secp384r1", "P-384"}, {"secp521r1", "P-521"}};
        key.curve = nist.at(g);
        key.description = "EC " + key.curve;
        return {};
    }
    if (EVP_PKEY_is_a(p, "ED25519")) {
        key.kind = tls::KeyKind::Ed25519;
        key.description = "Ed25519";
        return {};
    }
    if (EVP_PKEY_is_a(p, "ED448")) {
        key.kind = tls::KeyKind::Ed448;
        key.description = "Ed448";
        return {};
    }
    // FIPS 204 ML-DSA (OpenSSL 3.5 and later decode these; older ones never get here).
    for (auto kind : {tls::KeyKind::MLDSA44, tls::KeyKind::MLDSA65, tls::KeyKind::MLDSA87}) {
        if (EVP_PKEY_is_a(p, tls::key_type_name(kind))) {
            key.kind = kind;
            key.description = tls::key_type_name(kind);
            return {};
        }
    }
    return std::string("unsupported key type ") + EVP_PKEY_get0_type_name(p);
}

// Why a PEM private key that this OpenSSL could not decode is unusable, from its PKCS#8
// algorithm identifier (plain ASN.1, readable by any version): ML-DSA needs OpenSSL 3.5.
// Empty when the file is not a PKCS#8 key at all.
std::string undecodable_algorithm(const std::string& path) {
    ossl::Bio bio(BIO_new_file(path.c_str(), "r"));
    std::unique_ptr<PKCS8_PRIV_KEY_INFO, ossl::Deleter<PKCS8_PRIV_KEY_INFO_free>> info(
        bio ? PEM_read_bio_PKCS8_PRIV_KEY_INFO(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    ERR_clear_error();
    const ASN1_OBJECT* oid = nullptr;
    if (!info || PKCS8_pkey_get0(&oid, nullptr, nullptr, nullptr, info.get()) != 1 || !oid)
        return {};
    char text[80] = {};
    OBJ_obj2txt(text, sizeof text, oid, 1);
    std::string running = OpenSSL_version(OPENSSL_VERSION_STRING);
    if (auto kind = tls::ml_dsa_of_oid(text)) {
        std::string name = tls::key_type_name(*kind);
        return OpenSSL_version_num() >= 0x30500000L
                   ? "an " + name + " key that OpenSSL " + running + " cannot decode"
                   : "an " + name + " key: ML-DSA needs a keyserver built with OpenSSL 3.5 or " +
                         "later (this one runs OpenSSL " + running + ")";
    }
    return std::string("a private key of algorithm ") + text + ", which OpenSSL " + running +
           " cannot read (supported: RSA, EC, Ed25519, Ed448, ML-DSA from OpenSSL 3.5)";
}

} // namespace

std::string describe_key(Key& key) {
    if (auto why = classify(key); !why.empty()) return why;
    key.spki = spki_der(key.pkey.get());
    key.ski = compute_ski_from_own_spki(key.spki);
    return {};
}

namespace {

// Reads PEM private keys with one decoder context for a whole directory: building one costs
// OpenSSL 3.0 ~0.3 ms (it looks up every decoder), ten times the decoding itself, which made
// loading 10,000 keys take seconds.
class PemKeyReader {
  public:
    PemKeyReader() {
        ctx_.reset(OSSL_DECODER_CTX_new_for_pkey(
            &decoded_, "PEM", nullptr, nullptr, OSSL_KEYMGMT_SELECT_PRIVATE_KEY, nullptr, nullptr));
        // Never prompts: a callback that has no pass phrase makes an encrypted key an error.
        auto no_passphrase = [](char*, int, int, void*) { return -1; };
        if (ctx_) OSSL_DECODER_CTX_set_pem_password_cb(ctx_.get(), no_passphrase, nullptr);
    }
    // The private key in `bio`, or null.
    ossl::Pkey read(BIO* bio) {
        decoded_ = nullptr;
        if (!ctx_ || OSSL_DECODER_from_bio(ctx_.get(), bio) != 1 || !decoded_) {
            EVP_PKEY_free(decoded_);
            return nullptr;
        }
        ossl::Pkey out(decoded_);
        decoded_ = nullptr;
        return out;
    }

  private:
    EVP_PKEY* decoded_ = nullptr; // where the context puts each key
    std::unique_ptr<OSSL_DECODER_CTX, ossl::Deleter<OSSL_DECODER_CTX_free>> ctx_;
};

struct LoadedFile {
    std::shared_ptr<Key> key;
    std::string problem; // set instead of key
    std::string name;    // the file's stem, the key's name
};

LoadedFile load_file(const fs::path& path, PemKeyReader& reader, bool allow_insecure_permissions) {
    auto key = std::make_shared<Key>();
    key->name = path.stem().string();
    key->path = path.string();
    auto problem = [&](const std::string& why) {
        return LoadedFile{nullptr, "key '" + key->name + "' (" + key->path + "): " + why,
                          key->name};
    };
    if (!is_valid_key_id(key->name))
        return problem("file name is not a valid key id (letters, digits, '.', '_', '-')");
    struct stat st {};
    if (::stat(key->path.c_str(), &st) != 0) return problem("cannot stat file");
    if ((st.st_mode & 077) != 0 && !allow_insecure_permissions)
        return problem("readable or writable by group or others (chmod 600, or set "
                       "allow_insecure_key_permissions)");
    if (st.st_uid != ::geteuid() && st.st_uid != 0 && !allow_insecure_permissions)
        return problem("owned by uid " + std::to_string(st.st_uid) +
                       ", not by the keyserver's user or root (chown, or set "
                       "allow_insecure_key_permissions)");
    ossl::Bio bio(BIO_new_file(key->path.c_str(), "r"));
    if (!bio) return problem("cannot open: " + ossl::last_error());
    key->pkey = reader.read(bio.get());
    if (!key->pkey) {
        ERR_clear_error(); // the reason may quote file contents; say only what failed
        if (is_encrypted_pem(key->path))
            return problem("encrypted: the keyserver needs unencrypted key files (mode 600); "
                           "decrypt with openssl pkey -in FILE -out NEW");
        std::string algorithm = undecodable_algorithm(key->path);
        return problem(algorithm.empty() ? "not a PEM private key" : algorithm);
    }
    if (auto why = describe_key(*key); !why.empty()) return problem(why);
    EVP_PKEY_up_ref(key->pkey.get()); // shared with the FileKey that signs with it
    key->ops = std::make_shared<FileKey>(ossl::Pkey(key->pkey.get()), key->name);
    return {key, {}, key->name};
}

} // namespace

KeyStore KeyStore::load_directory(const std::string& dir, bool allow_insecure_permissions,
                                  std::vector<UnavailableKey>* unavailable) {
    KeyStore store;
    std::vector<std::string> problems;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) throw KeyStoreError({"key directory " + dir + ": " + ec.message()});
    struct stat dir_st {};
    if (::stat(dir.c_str(), &dir_st) == 0 && (dir_st.st_mode & 022) != 0 &&
        !allow_insecure_permissions)
        throw KeyStoreError({"key directory " + dir +
                             ": writable by group or others, who could swap keys (chmod 700, or "
                             "set allow_insecure_key_permissions)"});
    std::vector<fs::path> files;
    for (const auto& entry : it) {
        auto ext = entry.path().extension();
        if (entry.is_regular_file() && (ext == ".pem" || ext == ".key")) files.push_back(entry);
    }
    std::sort(files.begin(), files.end());
    // Files are parsed one after the other: OpenSSL 3.0's algorithm lookups take global locks, so
    // threads made loading slower, not faster.
    std::vector<LoadedFile> loaded;
    PemKeyReader reader;
    for (const auto& file : files)
        loaded.push_back(load_file(file, reader, allow_insecure_permissions));
    auto unusable = [&](const std::string& name, std::string why) {
        if (unavailable)
            unavailable->push_back({name, std::move(why)});
        else
            problems.push_back(std::move(why));
    };
    for (auto& file : loaded) {
        if (!file.problem.empty()) {
            unusable(file.name, std::move(file.problem));
            continue;
        }
        const auto& key = file.key;
        if (store.by_name_.count(key->name)) {
            unusable(key->name, "key '" + key->name + "' (" + key->path +
                                    "): another file has the same name (key names are file "
                                    "stems)");
            continue;
        }
        store.by_name_[key->name] = key;
        store.by_ski_[key->ski] = key;
        store.keys_.push_back(key);
    }
    if (!problems.empty()) throw KeyStoreError(std::move(problems));
    return store;
}

void KeyStore::add(std::shared_ptr<const Key> key) {
    if (by_name_.count(key->name))
        throw KeyStoreError(
            {"key '" + key->name + "' (" + key->path + "): a key file has the same name"});
    by_name_[key->name] = key;
    by_ski_[key->ski] = key;
    keys_.push_back(std::move(key));
}

std::shared_ptr<const Key> KeyStore::by_name(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

std::shared_ptr<const Key> KeyStore::by_ski(const Ski& ski) const {
    auto it = by_ski_.find(ski);
    return it == by_ski_.end() ? nullptr : it->second;
}

} // namespace keyless::keyserver
