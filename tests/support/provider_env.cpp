#include "provider_env.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

namespace keyless::test {

std::string write_openssl_conf(const std::string& path, const std::string& identity,
                               const std::string& ca, const std::string& extra) {
    std::string conf = "openssl_conf = openssl_init\n"
                       "[openssl_init]\nproviders = provider_sect\n"
                       "[provider_sect]\ndefault = default_sect\nkeyless = keyless_sect\n"
                       "[default_sect]\nactivate = 1\n"
                       "[keyless_sect]\nmodule = " +
                       provider_module() +
                       "\nactivate = 1\n"
                       "client_cert = " +
                       pki(identity + ".crt") +
                       "\n"
                       "client_key = " +
                       pki(identity + ".key") +
                       "\n"
                       "ca_file = " +
                       pki(ca) + "\n" + extra + "\n";
    write_file(path, conf);
    return path;
}

uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

bool accepts(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

void wait_for_port(uint16_t port, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (accepts(port)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("nothing listens on port " + std::to_string(port));
}

int run_with_conf(const std::string& conf, const std::string& command, std::string* output) {
    return run_command("OPENSSL_CONF=" + conf + " " + command, output);
}

} // namespace keyless::test
