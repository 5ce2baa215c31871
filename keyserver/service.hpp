// The running keyserver: the mTLS listener, the admin listener, signals, reload and drain.
// app.cpp parses flags and config and hands a Service what it loaded.
#pragma once

#include "app.hpp"
#include "keys/pkcs11/source.hpp"
#include "net/server.hpp"
#include "observe/access_log.hpp"
#include "observe/admin.hpp"
#include "observe/metrics.hpp"

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace keyless::keyserver {

struct ServiceSettings {
    Config config; // as started; listener and limits never change
    bool allow_core_dumps = false;
    std::function<Config()> reread_config; // the config as it would load now (file + flags)
    AppHooks hooks;
    std::shared_ptr<Pkcs11Registry> tokens; // the modules and tokens loaded at start, reused
};

// Loads the keys (the PEM directory, and PKCS#11 keys through `tokens`) and checks that every
// policy names one. A key whose source fails (a bad file, a token that cannot log in, a missing
// module) is listed in the state's `unavailable` and the others are served; with `strict` (the
// config's strict_start, and --check) any such problem throws KeyStoreError instead (every
// problem, each naming its key). A policy naming no key at all throws ConfigError.
std::shared_ptr<const ServingState> load_state(const Config& config, Pkcs11Registry& tokens,
                                               bool strict);
// Logs each key of `state` that is not served, with its reason.
void log_unavailable(const ServingState& state);

class Service {
  public:
    Service(ServiceSettings settings, std::shared_ptr<const ServingState> state,
            std::shared_ptr<asio::ssl::context> tls);
    ~Service();
    // Serves until SIGTERM/SIGINT (drained) and returns the exit status.
    int run();

  private:
    struct ReloadResult {
        bool ok = false;
        size_t keys = 0;
        std::vector<std::string> problems;       // each naming the key or file
        std::vector<UnavailableKey> unavailable; // applied, but these keys are not served
    };
    ReloadResult reload();
    // SIGHUP: reloads on a thread of its own, so the serving threads never wait for key files
    // (10,000 keys take ~0.5 s); signals during a reload make one more reload after it.
    void reload_in_background();
    void drain(const std::string& why); // stop accepting
    void stop(const std::string& why);  // drain, finish open connections, exit
    void watch_drain();
    MetricsSnapshot snapshot() const;
    AdminActions admin_actions();
    std::string keys_json() const;
    void on_signal(const boost::system::error_code& ec, int sig);

    ServiceSettings settings_;
    asio::io_context io_;
    // The admin listener has its own thread: a scrape or a POST /reload never takes a serving
    // thread, and the admin answers while every serving thread is busy.
    asio::io_context admin_io_;
    AccessLog log_;
    std::shared_ptr<ServerShared> shared_;
    std::unique_ptr<Server> server_;
    std::unique_ptr<AdminServer> admin_;
    asio::signal_set signals_;
    asio::steady_timer drain_timer_;
    std::chrono::steady_clock::time_point drain_deadline_;

    mutable std::mutex mutex_; // guards what reload replaces, and draining_
    std::shared_ptr<const ServingState> state_;
    std::vector<std::pair<std::string, int64_t>> certificate_expiry_;
    bool draining_ = false;       // not accepting (POST /drain or stopping)
    bool stopping_ = false;       // SIGTERM/SIGINT received: a second one exits at once
    std::mutex reload_mutex_;     // one reload at a time (SIGHUP and POST /reload)
    std::thread reloader_;        // the last SIGHUP reload; joined before the next and at exit
    bool reload_running_ = false; // guarded by mutex_
    bool reload_again_ = false;   // guarded by mutex_
};

} // namespace keyless::keyserver
