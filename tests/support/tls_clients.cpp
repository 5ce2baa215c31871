#include "tls_clients.hpp"

#include "keyserver_fixture.hpp"
#include "ossl.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

namespace keyless::test {

std::string s_client(uint16_t port, const std::string& args, const std::string& conf,
                     const std::string& request) {
    std::string out;
    std::string input = request.empty() ? "echo" : "printf '" + request + "'";
    // (OPENSSL_CONF goes right before openssl: in "VAR=x a | b" only `a` would see it.)
    run_command(input + " | " + (conf.empty() ? "" : "OPENSSL_CONF=" + conf + " ") +
                    "timeout 30 openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                    " -servername localhost -CAfile " + pki("ca.crt") + " -verify_return_error " +
                    (request.empty() ? "" : "-ign_eof ") + args,
                &out);
    return out;
}

bool handshake_ok(const std::string& out) {
    return out.find("Verify return code: 0 (ok)") != std::string::npos &&
           out.find("Cipher is ") != std::string::npos && out.find(":error:") == std::string::npos;
}

bool s_client_shows(const std::string& out, const std::string& expect, const std::string& op) {
    const std::string label = "Peer signature type: ", sign_tls = "sign-tls:";
    if (expect.rfind(label, 0) != 0 || op.rfind(sign_tls, 0) != 0)
        return out.find(expect) != std::string::npos;
    size_t at = out.find(label);
    if (at == std::string::npos) return false;
    at += label.size();
    std::string shown = out.substr(at, out.find('\n', at) - at);
    std::string legacy = expect.substr(label.size());
    if (!legacy.empty() && legacy.back() == '\n') legacy.pop_back();
    return shown == legacy || shown == op.substr(sign_tls.size());
}

bool handshake_eventually(uint16_t port, const std::string& args, const std::string& conf,
                          std::chrono::seconds within) {
    auto end = std::chrono::steady_clock::now() + within;
    while (true) {
        if (handshake_ok(s_client(port, args, conf))) return true;
        if (std::chrono::steady_clock::now() >= end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

std::string curl(uint16_t port, const std::string& args, const std::string& conf) {
    std::string out;
    std::string p = std::to_string(port);
    run_command((conf.empty() ? "" : "OPENSSL_CONF=" + conf + " ") +
                    "timeout 30 curl -sS --cacert " + pki("ca.crt") + " --resolve localhost:" + p +
                    ":127.0.0.1 " + args + " https://localhost:" + p + "/",
                &out);
    return out;
}

std::string https_get(uint16_t port, int max_version, const char* cipher_list) {
    ossl::SslCtx ctx(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_load_verify_locations(ctx.get(), pki("ca.crt").c_str(), nullptr);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    if (max_version) SSL_CTX_set_max_proto_version(ctx.get(), max_version);
    if (cipher_list) SSL_CTX_set_cipher_list(ctx.get(), cipher_list);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string response;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        ossl::Ssl ssl(SSL_new(ctx.get()));
        SSL_set_fd(ssl.get(), fd);
        SSL_set_tlsext_host_name(ssl.get(), "localhost");
        if (X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl.get()), "localhost", 0) == 1 &&
            SSL_connect(ssl.get()) == 1) {
            std::string req = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
            SSL_write(ssl.get(), req.data(), static_cast<int>(req.size()));
            char buf[4096];
            int n;
            while ((n = SSL_read(ssl.get(), buf, sizeof buf)) > 0)
                response.append(buf, static_cast<size_t>(n));
        }
    }
    ERR_clear_error();
    ::close(fd);
    return response;
}

int concurrent_gets(uint16_t port, int count, const std::string& expect, int max_version,
                    const char* cipher_list) {
    std::atomic<int> good{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < count; ++i)
        threads.emplace_back([&] {
            if (https_get(port, max_version, cipher_list).find(expect) != std::string::npos) ++good;
        });
    for (auto& t : threads)
        t.join();
    return good;
}

} // namespace keyless::test
