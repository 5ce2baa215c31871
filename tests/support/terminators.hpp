// Real, unmodified Debian TLS terminators started on 127.0.0.1 with generated configs under a
// temporary directory, keyless.so loaded through OPENSSL_CONF and keys given as stub PEM files
// (or, where the terminator loads keys through OSSL_STORE, as URIs).
// Each serves an RSA port and an EC port; every process they start is stopped with them.
#pragma once

#include "process.hpp"

#include <memory>
#include <string>

namespace keyless::test {

// Certificates are files; a key is a stub file, or what the terminator's key setting takes
// instead: "store:keyless:..." for nginx >= 1.29, "keyless:..." for stunnel >= 5.75.
struct EdgeKeys {
    std::string rsa_cert, rsa_key, ec_cert, ec_key;
};

// A plain-TCP HTTP server answering "keyless backend ok" (what stunnel forwards to).
class Backend {
  public:
    Backend();
    ~Backend();
    uint16_t port() const { return port_; }

  private:
    int listen_fd_ = -1;
    uint16_t port_ = 0;
    std::unique_ptr<struct BackendThread> thread_;
};

class Terminator {
  public:
    virtual ~Terminator() = default;
    uint16_t rsa_port() const { return rsa_port_; }
    uint16_t ec_port() const { return ec_port_; }
    virtual std::string name() const = 0;
    virtual std::string body() const = 0; // what a GET / returns
    virtual bool alive() = 0;             // every process of it still running
    virtual void reload() = 0;            // the terminator's own reload; returns when serving
    virtual std::string log() const = 0;

  protected:
    uint16_t rsa_port_ = 0, ec_port_ = 0;
};

// nginx (1.22 on Debian 12): master (loads keys as root) + worker_processes 2 (forked,
// unprivileged). `extra_http` is appended inside the http block (more server blocks).
std::unique_ptr<Terminator> start_nginx(const std::string& dir, const std::string& openssl_conf,
                                        const EdgeKeys& keys, const std::string& extra_http = "");
// haproxy (2.6 on Debian 12) master-worker (-W), nbthread N, optional ssl-mode-async. The RSA key
// is a stub after the certificate in the crt bundle; the EC key a separate "<crt>.key" file.
std::unique_ptr<Terminator> start_haproxy(const std::string& dir, const std::string& openssl_conf,
                                          const EdgeKeys& keys, int threads, bool async);
// stunnel (5.68 on Debian 12) daemonized (forks), thread per connection, forwarding to
// `backend_port`.
std::unique_ptr<Terminator> start_stunnel(const std::string& dir, const std::string& openssl_conf,
                                          const EdgeKeys& keys, uint16_t backend_port);

} // namespace keyless::test
