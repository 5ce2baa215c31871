// keyless-tool: operator commands around a keyless key URI, built on the provider and its client.
#include "key_stub.hpp"
#include "ossl.hpp"
#include "ski.hpp"
#include "tls_scheme.hpp"
#include "tool.hpp"
#include "uri.hpp"
#include "version.hpp"

#include <openssl/conf.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/store.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>
#include <vector>

using namespace keyless;
using namespace keyless::tool;

[[noreturn]] void keyless::tool::die(const std::string& message) {
    std::cerr << "keyless-tool: " << message << "\n";
    std::exit(1);
}

namespace {

// The keyless section of the openssl.cnf that OPENSSL_CONF names (or the default one), so ping
// uses the same settings as the provider: openssl_conf -> providers -> keyless -> section.
std::string conf_setting(const char* key) {
    static std::map<std::string, std::string> values = [] {
        std::map<std::string, std::string> out;
        const char* path = std::getenv("OPENSSL_CONF");
        std::string file = path ? path : std::string(X509_get_default_cert_area()) + "/openssl.cnf";
        std::unique_ptr<CONF, ossl::Deleter<NCONF_free>> conf(NCONF_new(nullptr));
        if (!conf || NCONF_load(conf.get(), file.c_str(), nullptr) <= 0) {
            ERR_clear_error();
            return out;
        }
        auto get = [&](const char* section, const char* name) -> std::string {
            const char* v = NCONF_get_string(conf.get(), section, name);
            return v ? v : "";
        };
        std::string init = get(nullptr, "openssl_conf");
        std::string providers = init.empty() ? "" : get(init.c_str(), "providers");
        std::string section = providers.empty() ? "" : get(providers.c_str(), "keyless");
        if (!section.empty())
            for (const char* k : {"client_cert", "client_key", "ca_file", "connect_timeout_ms",
                                  "request_timeout_ms", "connections_per_server", "servers"})
                out[k] = get(section.c_str(), k);
        ERR_clear_error();
        return out;
    }();
    auto it = values.find(key);
    return it == values.end() ? std::string() : it->second;
}

} // namespace

std::unique_ptr<client::Client> keyless::tool::direct_client(const Options& o, KeyUri& uri) {
    try {
        uri = parse_key_uri(o.uri);
        auto c = std::make_unique<client::Client>(client::resolve_settings(conf_setting));
        c->prepare();
        return c;
    } catch (const UriError& e) {
        die(e.what());
    } catch (const client::SettingsError& e) {
        die(e.what());
    }
}

namespace {

int ping(const Options& o) {
    // The same library initialisation a terminator gets: a config that names keyless.so but
    // cannot load it is reported here too (ping itself talks to the keyserver directly).
    OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr);
    if (std::getenv("OPENSSL_CONF") && !OSSL_PROVIDER_available(nullptr, "keyless"))
        std::cerr << "keyless-tool: warning: OPENSSL_CONF=" << std::getenv("OPENSSL_CONF")
                  << " does not load the keyless provider (module path? activate = 1?): "
                     "terminators using it would not find keyless keys; see keyless-tool check\n";
    ERR_clear_error();
    KeyUri uri;
    auto owned = direct_client(o, uri);
    client::Client& client = *owned;
    std::vector<double> rtts;
    std::string server;
    for (int i = 0; i < o.count; ++i) {
        auto start = std::chrono::steady_clock::now();
        auto call = client.run(uri, protocol::Operation::make(protocol::Opcode::Ping, {'k', 'l'}));
        double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count();
        if (call->failure != client::Failure::None) die(o.uri + ": ping failed: " + call->message);
        if (!call->response->is(protocol::Opcode::Pong))
            die(o.uri + ": ping failed: keyserver answered " +
                std::string(protocol::to_string(protocol::error_of(*call->response))));
        rtts.push_back(ms);
        server = call->last_endpoint;
    }
    double sum = 0;
    for (double r : rtts)
        sum += r;
    std::printf("pong from %s: %d pings, rtt min/avg/max = %.3f/%.3f/%.3f ms (first includes the "
                "mTLS handshake)\n",
                server.c_str(), o.count, *std::min_element(rtts.begin(), rtts.end()),
                sum / static_cast<double>(rtts.size()),
                *std::max_element(rtts.begin(), rtts.end()));
    return 0;
}

// Loads the key through the provider's STORE, loading the provider first if no config did
// (unless `config_only`: then a provider the config does not load is the error).
ossl::Pkey load_through_provider(const Options& o, bool config_only = false) {
    OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr);
    if (!OSSL_PROVIDER_available(nullptr, "keyless") && config_only) {
        const char* conf = std::getenv("OPENSSL_CONF");
        die(std::string("the keyless provider is not loaded by ") +
            (conf ? "OPENSSL_CONF=" + std::string(conf) : "the default openssl.cnf") +
            ": check its [provider_sect] entry, module = (the full path to keyless.so) and "
            "activate = 1" +
            (ERR_peek_error() ? ":\n" + ossl::all_errors() : std::string()));
    }
    if (!OSSL_PROVIDER_available(nullptr, "keyless")) {
        OSSL_PROVIDER_set_default_search_path(nullptr, o.provider_dir.c_str());
        if (!OSSL_PROVIDER_load(nullptr, "default") || !OSSL_PROVIDER_load(nullptr, "keyless"))
            die("cannot load the keyless provider from " + o.provider_dir + ":\n" +
                ossl::all_errors());
    }
    std::unique_ptr<OSSL_STORE_CTX, ossl::Deleter<OSSL_STORE_close>> store(
        OSSL_STORE_open(o.uri.c_str(), nullptr, nullptr, nullptr, nullptr));
    if (!store) die("cannot open " + o.uri + ":\n" + ossl::all_errors());
    while (!OSSL_STORE_eof(store.get())) {
        std::unique_ptr<OSSL_STORE_INFO, ossl::Deleter<OSSL_STORE_INFO_free>> info(
            OSSL_STORE_load(store.get()));
        if (info && OSSL_STORE_INFO_get_type(info.get()) == OSSL_STORE_INFO_PKEY)
            return ossl::Pkey(OSSL_STORE_INFO_get1_PKEY(info.get()));
        if (OSSL_STORE_error(store.get())) break;
    }
    die("no key loaded from " + o.uri + ":\n" + ossl::all_errors());
}

int pubkey(const Options& o) {
    auto key = load_through_provider(o);
    ossl::Bio out(BIO_new_fp(stdout, BIO_NOCLOSE));
    if (!PEM_write_bio_PUBKEY(out.get(), key.get()))
        die("cannot write public key: " + ossl::last_error());
    return 0;
}

ossl::Pkey public_key_from_file(const std::string& path) {
    ossl::Bio in(BIO_new_file(path.c_str(), "r"));
    if (!in) die("cannot open " + path);
    ossl::X509Ptr cert(PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr));
    if (cert) return ossl::Pkey(X509_get_pubkey(cert.get()));
    BIO_reset(in.get());
    ossl::Pkey pub(PEM_read_bio_PUBKEY(in.get(), nullptr, nullptr, nullptr));
    if (!pub) die(path + " holds no certificate or public key");
    ERR_clear_error();
    return pub;
}

int stub(const Options& o) {
    KeyStub s;
    try {
        s.uri = parse_key_uri(o.uri).to_string();
    } catch (const UriError& e) {
        die(e.what());
    }
    auto key = o.from_cert.empty() ? load_through_provider(o) : public_key_from_file(o.from_cert);
    try {
        s.spki_der = spki_der(key.get());
    } catch (const std::exception& e) {
        die(e.what());
    }
    std::string pem = encode_stub_pem(s);
    if (o.out.empty()) {
        std::cout << pem;
        return 0;
    }
    std::ofstream f(o.out);
    if (!(f << pem)) die("cannot write " + o.out);
    std::cerr << "wrote " << o.out << " for " << s.uri
              << " (it holds no secret: the private key stays on the keyserver)\n";
    return 0;
}

} // namespace

uint16_t keyless::tool::tls13_scheme(EVP_PKEY* key) {
    if (EVP_PKEY_is_a(key, "RSA")) return 0x0804;
    if (EVP_PKEY_is_a(key, "EC")) {
        int bits = EVP_PKEY_get_bits(key);
        return bits > 384 ? 0x0603 : bits > 256 ? 0x0503 : 0x0403;
    }
    for (auto kind : tls::kAllKeyKinds)
        if (tls::signs_whole_messages(kind) && EVP_PKEY_is_a(key, tls::key_type_name(kind)))
            return *tls::scheme_for(kind, tls::Padding::None, nullptr);
    die(std::string("no TLS 1.3 scheme for a ") + EVP_PKEY_get0_type_name(key) + " key");
}

namespace {

int check(const Options& o) {
    auto key = load_through_provider(o, true);
    std::string message = std::string(64, ' ') + "TLS 1.3, server CertificateVerify";
    message.push_back('\0');
    message.append(32, 'C');
    auto scheme = *tls::scheme_info(tls13_scheme(key.get()));
    bool pss = scheme.padding == tls::Padding::PSS;
    ossl::MdCtx sign_ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    if (EVP_DigestSignInit_ex(sign_ctx.get(), &pctx, scheme.digest_name(), nullptr, nullptr,
                              key.get(), nullptr) != 1 ||
        (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                 EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)))
        die(o.uri + ": cannot start signing:\n" + ossl::all_errors());
    size_t len = 0;
    auto* tbs = reinterpret_cast<const unsigned char*>(message.data());
    if (EVP_DigestSign(sign_ctx.get(), nullptr, &len, tbs, message.size()) != 1)
        die(o.uri + ": signing failed:\n" + ossl::all_errors());
    Bytes sig(len);
    if (EVP_DigestSign(sign_ctx.get(), sig.data(), &len, tbs, message.size()) != 1)
        die(o.uri + ": signing failed:\n" + ossl::all_errors());
    sig.resize(len);
    // Verified with the default provider against the public key alone.
    Bytes spki = spki_der(key.get());
    const unsigned char* p = spki.data();
    ossl::Pkey pub(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
    ossl::MdCtx verify_ctx(EVP_MD_CTX_new());
    pctx = nullptr;
    bool ok = pub &&
              EVP_DigestVerifyInit_ex(verify_ctx.get(), &pctx, scheme.digest_name(), nullptr,
                                      "provider=default", pub.get(), nullptr) == 1 &&
              (!pss || (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1)) &&
              EVP_DigestVerify(verify_ctx.get(), sig.data(), sig.size(), tbs, message.size()) == 1;
    if (!ok)
        die(o.uri + ": the keyserver's signature does not verify with the key's public key:\n" +
            ossl::all_errors());
    std::printf("ok: %s (%s, %d bits): the keyless provider loaded through the config, the "
                "keyserver signed a TLS 1.3 CertificateVerify (sign-tls) and it verifies\n",
                o.uri.c_str(), EVP_PKEY_get0_type_name(key.get()), EVP_PKEY_get_bits(key.get()));
    return 0;
}

} // namespace

Bytes keyless::tool::reply_or_die(const client::Call& call, const std::string& what) {
    if (call.failure != client::Failure::None) die(what + " failed: " + call.message);
    if (!call.response->is(protocol::Opcode::Response))
        die(what + " failed: keyserver answered " +
            std::string(protocol::to_string(protocol::error_of(*call.response))));
    return call.response->payload;
}

int main(int argc, char** argv) {
    Options o = parse_options(argc, argv);
    if (o.command == "check") return check(o);
    if (o.command == "ping") return ping(o);
    if (o.command == "pubkey") return pubkey(o);
    if (o.command == "stub") return stub(o);
    if (o.command == "bench") return bench(o);
    die("unknown command '" + o.command + "' (check, ping, pubkey, stub, bench)");
}
