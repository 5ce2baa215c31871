#include "keyserver_fixture.hpp"

#include "build_paths.hpp"

#include <filesystem>

#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

namespace keyless::test {

std::string pki_dir() {
    return test_pki_dir();
}

std::string pki(const std::string& name) {
    return pki_dir() + "/" + name;
}

size_t pki_key_count() {
    size_t n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(pki("keys")))
        n += entry.path().extension() == ".pem";
    return n;
}

bool pki_has_ml_dsa() {
    return std::filesystem::exists(pki("keys/mldsa65.pem"));
}

std::vector<std::pair<std::string, std::string>> pq_key_pairs() {
    if (!pki_has_ml_dsa()) return {{"ed448", "ed448"}};
    return {{"mldsa44", "mldsa87"}, {"mldsa65", "ed448"}};
}

std::string keyserver_binary(bool test_build) {
    return test_build ? test_keyserver() : keyserver_program();
}

void KeyserverFixture::write_config(const std::string& config_json) {
    auto config = nlohmann::json::parse(config_json);
    auto& tls = config["tls"]; // what the test sets is kept, the rest filled in
    if (!tls.contains("cert")) tls["cert"] = pki("keyserver.crt");
    if (!tls.contains("key")) tls["key"] = pki("keyserver.key");
    if (!tls.contains("client_ca")) tls["client_ca"] = pki("ca.crt");
    if (!config.contains("keys_dir")) config["keys_dir"] = pki("keys");
    config["access_log"] = dir_ / "access.log";
    // POST /drain and /reload need a token: tests get one unless they set the admin's own.
    admin_token_.clear();
    if (!config.contains("admin") || !config["admin"].contains("token_file")) {
        admin_token_ = "test-admin-token";
        write_file(dir_ / "admin.token", admin_token_ + "\n");
        ::chmod((dir_ / "admin.token").c_str(), 0600);
        config["admin"]["token_file"] = dir_ / "admin.token";
    }
    write_file(dir_ / "keyserver.json", config.dump(2));
}

void KeyserverFixture::rewrite_config(const std::string& config_json) {
    write_config(config_json);
}

void KeyserverFixture::reload_and_wait(const std::string& text, size_t times) {
    process_->kill(SIGHUP);
    for (int i = 0; i < 500 && count_of(stderr_text(), text) < times; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (count_of(stderr_text(), text) < times)
        throw std::runtime_error("the keyserver did not say '" + text + "' after SIGHUP:\n" +
                                 stderr_text());
}

KeyserverFixture::KeyserverFixture(const std::string& config_json,
                                   std::vector<std::string> extra_args, const std::string& listen,
                                   std::vector<std::string> wrapper)
    : wrapper_(std::move(wrapper)) {
    write_config(config_json);
    set_args(extra_args);
    start(listen);
}

void KeyserverFixture::set_args(const std::vector<std::string>& extra_args) {
    // Test-only flags (--test-...) need the test build of the keyserver; the rest runs the real
    // one.
    bool test_build = std::any_of(extra_args.begin(), extra_args.end(),
                                  [](const std::string& a) { return a.rfind("--test-", 0) == 0; });
    args_ = {keyserver_binary(test_build), "--config", dir_ / "keyserver.json", "--ready-file",
             dir_ / "ready"};
    // Many keyservers run at once in tests: the admin listener gets a free port too.
    if (std::find(extra_args.begin(), extra_args.end(), "--admin") == extra_args.end())
        args_.insert(args_.end(), {"--admin", "127.0.0.1:0"});
    args_.insert(args_.end(), extra_args.begin(), extra_args.end());
}

void KeyserverFixture::start(const std::string& listen) {
    ::unlink((dir_ / "ready").c_str());
    auto args = wrapper_;
    args.insert(args.end(), args_.begin(), args_.end());
    args.insert(args.end(), {"--listen", listen});
    process_ = std::make_unique<Process>(args, std::map<std::string, std::string>{}, "",
                                         dir_ / "stderr.log");
    std::string ready;
    try {
        ready = wait_for_file(dir_ / "ready", std::chrono::seconds(10));
    } catch (const std::exception&) {
        throw std::runtime_error("keyserver did not start: " + stderr_text());
    }
    // Line 1: the keyserver's address; line 2: the admin listener's, or "off".
    std::string first = ready.substr(0, ready.find('\n'));
    port_ = static_cast<uint16_t>(std::stoi(first.substr(first.rfind(':') + 1)));
    host_ = first.substr(0, first.rfind(':'));
    std::string second = ready.substr(ready.find('\n') + 1);
    second = second.substr(0, second.find('\n'));
    admin_port_ = second.rfind(':') == std::string::npos
                      ? 0
                      : static_cast<uint16_t>(std::stoi(second.substr(second.rfind(':') + 1)));
}

void KeyserverFixture::restart() {
    process_.reset();
    start(address());
}

void KeyserverFixture::restart(std::vector<std::string> extra_args) {
    set_args(extra_args);
    restart();
}

ClientOptions KeyserverFixture::client(const std::string& identity) const {
    ClientOptions o;
    o.host = host_;
    o.port = port_;
    o.ca = pki("ca.crt");
    if (!identity.empty()) {
        o.cert = pki(identity + ".crt");
        o.key = pki(identity + ".key");
    }
    return o;
}

std::string admin(KeyserverFixture& keyserver, const std::string& method, const std::string& path,
                  const std::string& extra) {
    std::string out;
    std::string auth = keyserver.admin_token().empty()
                           ? ""
                           : " -H 'Authorization: Bearer " + keyserver.admin_token() + "'";
    run_command("curl -s -m 10 -X " + method + auth + " " + extra +
                    " -w '\\n%{http_code}' http://127.0.0.1:" +
                    std::to_string(keyserver.admin_port()) + path,
                &out);
    auto nl = out.rfind('\n');
    return out.substr(nl + 1) + "\n" + out.substr(0, nl);
}

double metric_sample(const std::string& metrics, const std::string& series) {
    auto at = metrics.find("\n" + series + " ");
    if (at == std::string::npos) return 0;
    return std::stod(metrics.substr(at + series.size() + 2));
}

double wait_for_metric(KeyserverFixture& keyserver, const std::string& series, double at_least) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    double value = 0;
    while (true) {
        value = metric_sample(admin(keyserver, "GET", "/metrics"), series);
        if (value >= at_least) return value;
        if (std::chrono::steady_clock::now() > until)
            throw std::runtime_error("the keyserver's " + series + " stayed at " +
                                     std::to_string(value) + ", below " + std::to_string(at_least) +
                                     ", for 10 s");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

} // namespace keyless::test
