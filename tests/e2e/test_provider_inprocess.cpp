// The provider inside a process, the way nginx, haproxy and stunnel use it: a stub PEM read with
// PEM_read_bio_PrivateKey, checked against the certificate, used across fork() and from many
// threads at once.
#include "keyserver_fixture.hpp"
#include "ossl.hpp"
#include "provider_env.hpp"

#include "catch.hpp"
#include <openssl/core_dispatch.h>
#include <openssl/pem.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <new>
#include <thread>

using namespace keyless;
using namespace keyless::test;

// Allocation failure on demand, for the provider's callbacks (keyless.so's operator new is this
// one: the executable's definition wins). Armed per thread, so only the tested call fails.
namespace {
thread_local int fail_allocations_after = -1; // -1: never
} // namespace

void* operator new(std::size_t size) {
    if (fail_allocations_after == 0) {
        fail_allocations_after = -1;
        throw std::bad_alloc();
    }
    if (fail_allocations_after > 0) --fail_allocations_after;
    // libstdc++'s operator delete frees with free().
    if (void* p = std::malloc(size ? size : 1)) return p;
    throw std::bad_alloc();
}

namespace {

const char* kConfig = R"({"keys": {
    "rsa2048": {"allow": ["sign-tls", "sign-digest"]},
    "p256": {"allow": ["sign-tls", "sign-digest"]}
}})";

// A library context with default + keyless loaded from a generated openssl.cnf.
struct Context {
    explicit Context(const std::string& conf) : libctx(OSSL_LIB_CTX_new()) {
        if (!OSSL_LIB_CTX_load_config(libctx.get(), conf.c_str()))
            throw std::runtime_error("cannot load " + conf + ": " + ossl::all_errors());
    }
    ossl::LibCtx libctx;
};

ossl::Pkey read_key(OSSL_LIB_CTX* libctx, const std::string& path) {
    ossl::Bio in(BIO_new_file(path.c_str(), "r"));
    return ossl::Pkey(
        PEM_read_bio_PrivateKey_ex(in.get(), nullptr, nullptr, nullptr, libctx, nullptr));
}

ossl::X509Ptr read_cert(const std::string& path) {
    ossl::Bio in(BIO_new_file(path.c_str(), "r"));
    return ossl::X509Ptr(PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr));
}

// Signs `message` with SHA-256 and verifies it with the certificate's key; true if both work.
bool sign_and_verify(OSSL_LIB_CTX* libctx, EVP_PKEY* key, X509* cert, const std::string& message) {
    ossl::MdCtx sctx(EVP_MD_CTX_new());
    size_t len = 0;
    auto data = reinterpret_cast<const unsigned char*>(message.data());
    if (EVP_DigestSignInit_ex(sctx.get(), nullptr, "SHA256", libctx, nullptr, key, nullptr) != 1 ||
        EVP_DigestSign(sctx.get(), nullptr, &len, data, message.size()) != 1)
        return false;
    Bytes sig(len);
    if (EVP_DigestSign(sctx.get(), sig.data(), &len, data, message.size()) != 1) return false;
    ossl::MdCtx vctx(EVP_MD_CTX_new());
    return EVP_DigestVerifyInit(vctx.get(), nullptr, EVP_sha256(), nullptr,
                                X509_get0_pubkey(cert)) == 1 &&
           EVP_DigestVerify(vctx.get(), sig.data(), len, data, message.size()) == 1;
}

// A keyserver, and its p256 key as a stub read in a library context with keyless loaded.
struct P256Edge {
    P256Edge() : ctx(conf()) {
        std::string out;
        REQUIRE(run_with_conf(dir / "openssl.cnf",
                              keyless_tool() + " stub keyless:" + keyserver.address() +
                                  "/p256 -o " + (dir / "p256.pem"),
                              &out) == 0);
        key = read_key(ctx.libctx.get(), dir / "p256.pem");
        REQUIRE(key);
    }
    std::string conf() { return write_openssl_conf(dir / "openssl.cnf"); }
    KeyserverFixture keyserver{kConfig};
    TempDir dir;
    Context ctx;
    ossl::Pkey key;
    ossl::X509Ptr cert = read_cert(pki("certs/p256.crt"));
};

} // namespace

TEST_CASE("stub PEM: PEM_read_bio_PrivateKey, X509_check_private_key, sign across fork") {
    KeyserverFixture keyserver(kConfig);
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    std::string uri = "keyless:" + keyserver.address() + "/rsa2048";
    std::string out;
    REQUIRE(run_with_conf(conf, keyless_tool() + " stub " + uri + " -o " + (dir / "stub.pem"),
                          &out) == 0);
    // haproxy-style bundle: certificate first, then the stub
    write_file(dir / "bundle.pem",
               read_file(pki("certs/rsa2048.crt")) + read_file(dir / "stub.pem"));

    Context ctx(conf);
    auto cert = read_cert(pki("certs/rsa2048.crt"));
    for (const char* file : {"stub.pem", "bundle.pem"}) {
        CAPTURE(file);
        auto key = read_key(ctx.libctx.get(), dir / file);
        INFO(ossl::all_errors());
        REQUIRE(key);
        CHECK(EVP_PKEY_is_a(key.get(), "RSA"));
        CHECK(EVP_PKEY_get_bits(key.get()) == 2048);
        ERR_clear_error();
        CHECK(X509_check_private_key(cert.get(), key.get()) == 1);
        // Nothing may be left on the error queue: nginx reports leftovers as "stale" errors.
        CHECK(ERR_peek_error() == 0);
        CHECK(EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key.get()) == 1);
        CHECK(X509_check_private_key(read_cert(pki("certs/p256.crt")).get(), key.get()) == 0);
        ERR_clear_error();
    }

    auto key = read_key(ctx.libctx.get(), dir / "stub.pem");
    REQUIRE(sign_and_verify(ctx.libctx.get(), key.get(), cert.get(), "parent, before fork"));
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // The parent's connection and I/O thread are gone here; the provider must rebuild both.
        bool ok = sign_and_verify(ctx.libctx.get(), key.get(), cert.get(), "child, first") &&
                  sign_and_verify(ctx.libctx.get(), key.get(), cert.get(), "child, second");
        _exit(ok ? 0 : 1);
    }
    CHECK(sign_and_verify(ctx.libctx.get(), key.get(), cert.get(), "parent, after fork"));
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(
        sign_and_verify(ctx.libctx.get(), key.get(), cert.get(), "parent, after the child exited"));
    // Every signature went to the keyserver: parent x4, child x2.
    std::string log = keyserver.access_log();
    size_t signs = 0;
    for (size_t at = log.find("rsa-sign-sha256"); at != std::string::npos;
         at = log.find("rsa-sign-sha256", at + 1))
        ++signs;
    CHECK(signs == 5);
}

TEST_CASE("8 threads x 500 signatures on one key, all verified") {
    P256Edge edge;
    Context& ctx = edge.ctx;
    std::atomic<int> good{0}, bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 500; ++i)
                (sign_and_verify(ctx.libctx.get(), edge.key.get(), edge.cert.get(),
                                 "thread " + std::to_string(t) + " message " + std::to_string(i))
                     ? good
                     : bad)++;
        });
    for (auto& th : threads)
        th.join();
    CHECK(bad == 0);
    CHECK(good == 4000);
}

#ifdef OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_INIT // OpenSSL 3.5's message-signing API
TEST_CASE("EVP_PKEY_sign_message_init/update/final on keyless ML-DSA and Ed448 keys, one-shot and "
          "streamed") {
    std::vector<std::string> names{"ed448"};
    if (pki_has_ml_dsa()) names.insert(names.end(), {"mldsa44", "mldsa65", "mldsa87"});
    std::string keys;
    for (const auto& n : names)
        keys +=
            std::string(keys.empty() ? "" : ", ") + "\"" + n + R"(": {"allow": ["sign-digest"]})";
    KeyserverFixture keyserver(R"({"keys": {)" + keys + "}}");
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    Context c(conf);
    std::string message(5000, 'm'); // not a TLS input: signed under sign-digest
    auto data = reinterpret_cast<const unsigned char*>(message.data());
    for (const auto& name : names) {
        INFO(name);
        std::string stub = dir / (name + ".stub.pem"), out;
        REQUIRE(run_with_conf(conf,
                              keyless_tool() + " stub keyless:" + keyserver.address() + "/" + name +
                                  " -o " + stub,
                              &out) == 0);
        ossl::Pkey key = read_key(c.libctx.get(), stub);
        REQUIRE(key);
        ossl::X509Ptr cert = read_cert(pki("certs/" + name + ".crt"));
        std::string alg = name == "ed448" ? "ED448" : "ML-DSA-" + name.substr(5);
        for (bool streamed : {false, true}) {
            INFO((streamed ? "update/final" : "one-shot"));
            std::unique_ptr<EVP_SIGNATURE, ossl::Deleter<EVP_SIGNATURE_free>> sigalg(
                EVP_SIGNATURE_fetch(c.libctx.get(), alg.c_str(), "provider=keyless"));
            REQUIRE(sigalg);
            ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(c.libctx.get(), key.get(), nullptr));
            REQUIRE(EVP_PKEY_sign_message_init(ctx.get(), sigalg.get(), nullptr) == 1);
            size_t len = 0;
            Bytes sig;
            if (streamed) {
                REQUIRE(EVP_PKEY_sign_message_update(ctx.get(), data, 1000) == 1);
                REQUIRE(EVP_PKEY_sign_message_update(ctx.get(), data + 1000, 4000) == 1);
                REQUIRE(EVP_PKEY_sign_message_final(ctx.get(), nullptr, &len) == 1);
                sig.resize(len);
                REQUIRE(EVP_PKEY_sign_message_final(ctx.get(), sig.data(), &len) == 1);
            } else {
                REQUIRE(EVP_PKEY_sign(ctx.get(), nullptr, &len, data, message.size()) == 1);
                sig.resize(len);
                REQUIRE(EVP_PKEY_sign(ctx.get(), sig.data(), &len, data, message.size()) == 1);
            }
            sig.resize(len);
            // Verified by the default provider with the certificate's public key.
            ossl::MdCtx vctx(EVP_MD_CTX_new());
            CHECK(EVP_DigestVerifyInit_ex(vctx.get(), nullptr, nullptr, nullptr, nullptr,
                                          X509_get0_pubkey(cert.get()), nullptr) == 1);
            CHECK(EVP_DigestVerify(vctx.get(), sig.data(), sig.size(), data, message.size()) == 1);
        }
    }
    CHECK(count_of(keyserver.access_log(), "\"result\":\"ok\"") >= 2 * names.size());

    // A streamed message is bounded by what one keyserver frame carries (60 KiB).
    ossl::Pkey key = read_key(c.libctx.get(), dir / "ed448.stub.pem");
    std::unique_ptr<EVP_SIGNATURE, ossl::Deleter<EVP_SIGNATURE_free>> ed448(
        EVP_SIGNATURE_fetch(c.libctx.get(), "ED448", "provider=keyless"));
    ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(c.libctx.get(), key.get(), nullptr));
    REQUIRE(EVP_PKEY_sign_message_init(ctx.get(), ed448.get(), nullptr) == 1);
    std::string big(60 * 1024, 'b');
    auto big_data = reinterpret_cast<const unsigned char*>(big.data());
    CHECK(EVP_PKEY_sign_message_update(ctx.get(), big_data, big.size()) == 1);
    ERR_clear_error();
    CHECK(EVP_PKEY_sign_message_update(ctx.get(), big_data, 1) != 1);
    CHECK_THAT(ossl::all_errors(), match::contains("a message of more than 61440 bytes"));
}
#endif

TEST_CASE("an allocation that fails inside a provider callback fails that call, not the process") {
    P256Edge edge;
    Context& ctx = edge.ctx;
    const std::string message(300, 'm');
    auto data = reinterpret_cast<const unsigned char*>(message.data());
    // Each case in a child, with the first, second, ... C++ allocation of one OpenSSL call failing
    // (armed just before it). A std::bad_alloc that escaped a callback would end a terminator
    // with std::terminate; here it would reach the test's catch.
    auto init = [&](EVP_MD_CTX* m) {
        return EVP_DigestSignInit_ex(m, nullptr, "SHA256", ctx.libctx.get(), nullptr,
                                     edge.key.get(), nullptr) == 1;
    };
    struct Case {
        const char* name;
        std::function<void(int nth)> run;
    };
    std::vector<Case> cases = {
        {"EVP_DigestSignInit (newctx)",
         [&](int nth) {
             ossl::MdCtx m(EVP_MD_CTX_new());
             fail_allocations_after = nth;
             (void)init(m.get());
         }},
        {"EVP_DigestSignUpdate",
         [&](int nth) {
             ossl::MdCtx m(EVP_MD_CTX_new());
             if (!init(m.get())) _exit(4);
             fail_allocations_after = nth;
             (void)EVP_DigestSignUpdate(m.get(), data, message.size());
         }},
        {"EVP_MD_CTX_copy_ex (dupctx)",
         [&](int nth) {
             ossl::MdCtx m(EVP_MD_CTX_new()), copy(EVP_MD_CTX_new());
             if (!init(m.get()) || EVP_DigestSignUpdate(m.get(), data, message.size()) != 1)
                 _exit(4);
             fail_allocations_after = nth;
             (void)EVP_MD_CTX_copy_ex(copy.get(), m.get());
         }},
        {"EVP_PKEY_dup (keymgmt dup)",
         [&](int nth) {
             fail_allocations_after = nth;
             ossl::Pkey dup(EVP_PKEY_dup(edge.key.get()));
         }},
        {"EVP_DigestSign over the keyserver",
         [&](int nth) {
             ossl::MdCtx m(EVP_MD_CTX_new());
             unsigned char sig[256];
             size_t len = sizeof sig;
             if (!init(m.get())) _exit(4);
             fail_allocations_after = nth;
             (void)EVP_DigestSign(m.get(), sig, &len, data, message.size());
         }},
    };
    int failed = 0, ran = 0;
    for (const auto& c : cases)
        for (int nth = 0; nth < 4; ++nth) {
            pid_t child = fork();
            REQUIRE(child >= 0);
            if (child == 0) {
                try {
                    c.run(nth);
                } catch (...) {
                    _exit(3); // an exception crossed OpenSSL's frames
                }
                _exit(0);
            }
            int status = 0;
            REQUIRE(waitpid(child, &status, 0) == child);
            ++ran;
            INFO(c.name << ", allocation " << nth << " failing: status " << status);
            CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
            failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
    INFO(ran << " children, " << failed << " where an exception escaped keyless");
    CHECK(failed == 0);
    // Unarmed, everything works.
    CHECK(sign_and_verify(ctx.libctx.get(), edge.key.get(), edge.cert.get(), message));
}
