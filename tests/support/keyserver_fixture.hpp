// Starts the real keyserver binary on 127.0.0.1 (a free port) with the test PKI, for one test.
#pragma once

#include "process.hpp"
#include "test_client.hpp"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace keyless::test {

// The PKI made by tests/gen-pki.sh (ctest fixture; build_paths.hpp says where).
std::string pki_dir();
std::string pki(const std::string& name); // pki_dir() + "/" + name
// How many keys gen-pki.sh made (the ML-DSA ones only where OpenSSL has ML-DSA).
size_t pki_key_count();
// Whether gen-pki.sh made ML-DSA keys (it does where OpenSSL has ML-DSA: 3.5 and later).
bool pki_has_ml_dsa();
// The whole-message keys of this PKI in pairs, one pair per terminator started with two
// certificates: (mldsa44, mldsa87) and (mldsa65, ed448) where there is ML-DSA, else (ed448, ed448).
// Each key's name is also its TLS 1.3 scheme's.
std::vector<std::pair<std::string, std::string>> pq_key_pairs();
// The keyserver program, or its test build with test-only flags
// (tests/support/keyserver_for_tests.cpp).
std::string keyserver_binary(bool test_build = false);

class KeyserverFixture {
  public:
    // config_json: the JSON config (TLS, the access log and, unless given, keys_dir and an admin
    // token file are filled in; "admin": {"token_file": ""} runs the admin listener without one);
    // extra_args: more flags (any --test-... flag runs the keyserver's test build). listen: where
    // to listen (default: a free port); wrapper: a command the keyserver runs under (e.g.
    // {"/usr/bin/prlimit", "--nofile=64:64", "--"}).
    explicit KeyserverFixture(const std::string& config_json = "{}",
                              std::vector<std::string> extra_args = {},
                              const std::string& listen = "127.0.0.1:0",
                              std::vector<std::string> wrapper = {});
    uint16_t port() const { return port_; }
    uint16_t admin_port() const { return admin_port_; } // 0 when the admin listener is off
    // The admin bearer token the fixture made ("" when the test configured its own, or none).
    const std::string& admin_token() const { return admin_token_; }
    std::string address() const { return host_ + ":" + std::to_string(port_); } // as bound
    std::string access_log() const { return read_file(dir_ / "access.log"); }
    std::string access_log_path() const { return dir_ / "access.log"; }
    std::string stderr_text() const { return read_file(dir_ / "stderr.log"); }
    Process& process() { return *process_; }
    // Restarts on the same port (for outage tests), optionally with other extra flags.
    void restart();
    void restart(std::vector<std::string> extra_args);
    // Replaces the config file (filled in as at start); SIGHUP makes it live.
    void rewrite_config(const std::string& config_json);
    // SIGHUP, then waits (bounded) until the keyserver has said `text` `times` times on stderr.
    void reload_and_wait(const std::string& text, size_t times = 1);
    void stop() { process_.reset(); }
    ClientOptions client(const std::string& identity = "edge-1") const;

  private:
    void set_args(const std::vector<std::string>& extra_args);
    void start(const std::string& listen);
    void write_config(const std::string& config_json);
    TempDir dir_;
    std::vector<std::string> args_;
    std::vector<std::string> wrapper_;
    std::unique_ptr<Process> process_;
    std::string host_ = "127.0.0.1";
    uint16_t port_ = 0;
    uint16_t admin_port_ = 0;
    std::string admin_token_;
};

// `curl -s` against the keyserver's admin listener, with the fixture's admin token; returns
// "STATUS\nBODY".
std::string admin(KeyserverFixture& keyserver, const std::string& method, const std::string& path,
                  const std::string& extra = "");

// The value of `series` (name and labels, as printed) in Prometheus text; 0 when absent.
double metric_sample(const std::string& metrics, const std::string& series);
// Waits until the keyserver's /metrics shows `series` at `at_least` or more; throws after 10 s.
// Tests wait on what the keyserver reports, never for a time.
double wait_for_metric(KeyserverFixture& keyserver, const std::string& series, double at_least);

} // namespace keyless::test
