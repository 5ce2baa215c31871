#include "service.hpp"

#include "net/connection.hpp"
#include "observe/log.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <thread>

namespace keyless::keyserver {

namespace {

std::string address_text(const tcp::endpoint& ep) {
    return (ep.address().is_v6() ? "[" + ep.address().to_string() + "]"
                                 : ep.address().to_string()) +
           ":" + std::to_string(ep.port());
}

std::shared_ptr<const RequestHandler> handler_for(std::shared_ptr<const ServingState> state,
                                                  const AppHooks& hooks) {
    auto dispatcher = std::make_shared<const Dispatcher>(std::move(state));
    if (hooks.wrap) return hooks.wrap(dispatcher);
    return dispatcher;
}

std::vector<std::pair<std::string, int64_t>> expiry_of(const Config& c) {
    auto all = certificate_expiry(c.cert_file, "server");
    for (auto& ca : certificate_expiry(c.client_ca_file, "client_ca"))
        all.push_back(std::move(ca));
    return all;
}

std::string read_token(const std::string& file) {
    if (file.empty()) return {};
    std::ifstream in(file);
    std::string token;
    if (!in || !std::getline(in, token) || token.empty())
        throw ConfigError("admin.token_file " + file + ": cannot read a token from it");
    return token;
}

AdminResponse text(unsigned status, std::string body) {
    return {status, "text/plain; charset=utf-8", std::move(body)};
}

AdminResponse json(unsigned status, const nlohmann::json& body) {
    return {status, "application/json", body.dump(2) + "\n"};
}

} // namespace

// Runs `io` until it stops. An exception that escapes a handler (std::bad_alloc, a bug) is
// logged and the loop resumes, which asio allows: one request never ends the keyserver.
void run_logging_failures(asio::io_context& io, const char* what) noexcept {
    while (true) {
        try {
            io.run();
            return;
        } catch (const std::exception& e) {
            log_line(Level::Error, std::string(what) + ": a handler failed: " + e.what());
        } catch (...) {
            log_line(Level::Error, std::string(what) + ": a handler failed");
        }
    }
}

std::shared_ptr<const ServingState> load_state(const Config& config, Pkcs11Registry& tokens,
                                               bool strict) {
    KeyStore keys;
    // Every key is tried, so one run names every problem.
    std::vector<UnavailableKey> unavailable;
    if (!config.keys_dir.empty())
        keys = KeyStore::load_directory(config.keys_dir, config.allow_insecure_key_permissions,
                                        &unavailable);
    Pkcs11Settings pkcs11 = config.pkcs11;
    pkcs11.allow_insecure_permissions = config.allow_insecure_key_permissions;
    for (const auto& [name, uri] : config.pkcs11_keys) {
        try {
            auto key = tokens.load(name, uri, pkcs11);
            const KeyPolicy& policy = config.policies.policy_for(name);
            if (key->raw_decrypt_unavailable && (policy.allow.count(Permission::RSADecryptTLS) ||
                                                 policy.allow.count(Permission::RSADecryptRaw)))
                throw std::runtime_error(uri +
                                         ": the token does not decrypt raw RSA (CKM_RSA_X_509 "
                                         "with CKA_DECRYPT) with this key, which "
                                         "rsa-decrypt-tls needs: remove that permission");
            keys.add(std::move(key));
        } catch (const std::exception& e) {
            unavailable.push_back({name, "key '" + name + "': " + e.what()});
        }
    }
    if (strict && !unavailable.empty()) {
        std::vector<std::string> problems;
        for (auto& u : unavailable)
            problems.push_back(std::move(u.reason));
        throw KeyStoreError(std::move(problems));
    }
    auto is_unavailable = [&](const std::string& name) {
        return std::any_of(unavailable.begin(), unavailable.end(),
                           [&](const UnavailableKey& u) { return u.name == name; });
    };
    for (const auto& [name, policy] : config.policies.key_policies)
        if (!keys.by_name(name) && !is_unavailable(name))
            throw ConfigError("'keys." + name + "': no key file named " + name + ".pem or " + name +
                              ".key in " + config.keys_dir + ", and no pkcs11 URI");
    return std::make_shared<const ServingState>(ServingState{
        std::move(keys), config.policies, config.limits.max_ping_payload, std::move(unavailable)});
}

void log_unavailable(const ServingState& state) {
    for (const auto& u : state.unavailable)
        log_line(Level::Error, "unavailable (the other keys are served): " + u.reason);
}

Service::Service(ServiceSettings settings, std::shared_ptr<const ServingState> state,
                 std::shared_ptr<asio::ssl::context> tls)
    : settings_(std::move(settings)), log_(settings_.config.access_log),
      shared_(std::make_shared<ServerShared>(io_, settings_.config.limits, log_,
                                             handler_for(state, settings_.hooks))),
      signals_(io_, SIGINT, SIGTERM, SIGHUP), drain_timer_(io_), state_(std::move(state)),
      certificate_expiry_(expiry_of(settings_.config)) {
    signals_.add(SIGUSR1);
    const Config& c = settings_.config;
    for (const auto& line : raise_fd_limit(c.limits.max_connections + c.limits.max_handshaking))
        log_line(line.rfind("raised", 0) == 0 ? Level::Info : Level::Warn, line);
    server_ =
        std::make_unique<Server>(io_, std::move(tls), parse_listen_address(c.listen), shared_);
    if (c.admin_listen != "off") {
        auto admin_at = parse_listen_address(c.admin_listen);
        std::string token = read_token(c.admin_token_file);
        if (!admin_at.address().is_loopback() && token.empty())
            throw ConfigError("admin listener " + c.admin_listen +
                              " is not a loopback address: set admin.token_file (a bearer "
                              "token), or listen on 127.0.0.1");
        admin_ = std::make_unique<AdminServer>(admin_io_, admin_at, token, admin_actions());
    }
    shared_->rate_limiter.configure(c.rate_limits);
    shared_->metrics.count_reload(true); // the start counts as the first successful load
}

Service::~Service() = default;

int Service::run() {
    server_->start();
    std::string where = address_text(server_->local_endpoint());
    std::string admin_where = admin_ ? address_text(admin_->local_endpoint()) : "off";
    log_line(Level::Info, "listening on " + where + " with " +
                              std::to_string(state_->keys.keys().size()) + " key(s), admin on " +
                              admin_where + ", core dumps " +
                              (settings_.allow_core_dumps ? "allowed" : "disabled"));
    if (!settings_.config.ready_file.empty()) {
        std::string tmp = settings_.config.ready_file + ".tmp";
        std::ofstream(tmp) << where << "\n" << admin_where << "\n";
        std::rename(tmp.c_str(), settings_.config.ready_file.c_str());
    }
    signals_.async_wait(
        [this](const boost::system::error_code& ec, int sig) { on_signal(ec, sig); });

    const Config& c = settings_.config;
    unsigned threads = c.threads ? c.threads : std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i)
        pool.emplace_back([this] { run_logging_failures(io_, "worker thread"); });
    std::thread admin_thread;
    if (admin_)
        admin_thread = std::thread([this] { run_logging_failures(admin_io_, "admin listener"); });
    run_logging_failures(io_, "worker thread");
    for (auto& t : pool)
        t.join();
    admin_io_.stop();
    if (admin_thread.joinable()) admin_thread.join();
    if (reloader_.joinable()) reloader_.join();
    log_line(Level::Info, "stopped");
    return 0;
}

void Service::on_signal(const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
        reload_in_background();
    } else if (sig == SIGUSR1) {
        try {
            log_.reopen();
            log_line(Level::Info, "access log reopened");
        } catch (const std::exception& e) {
            log_line(Level::Error, std::string("cannot reopen the access log: ") + e.what());
        }
    } else {
        bool again;
        {
            std::lock_guard lock(mutex_);
            again = stopping_;
            stopping_ = true;
        }
        if (again) {
            log_line(Level::Warn, "second signal " + std::to_string(sig) + ": exiting at once");
            io_.stop();
            return;
        }
        stop("signal " + std::to_string(sig));
    }
    signals_.async_wait([this](const boost::system::error_code& e, int s) { on_signal(e, s); });
}

void Service::reload_in_background() {
    std::lock_guard lock(mutex_);
    if (reload_running_) {
        reload_again_ = true;
        return;
    }
    reload_running_ = true;
    if (reloader_.joinable()) reloader_.join(); // finished: it cleared reload_running_ last
    reloader_ = std::thread([this] {
        while (true) {
            try {
                reload(); // reports its own failures; this catches what escapes even that
            } catch (...) {
                shared_->metrics.count_reload(false);
            }
            std::lock_guard again(mutex_);
            if (!reload_again_) {
                reload_running_ = false;
                return;
            }
            reload_again_ = false;
        }
    });
}

Service::ReloadResult Service::reload() {
    std::lock_guard serial(reload_mutex_);
    ReloadResult result;
    try {
        Config fresh = settings_.reread_config();
        // Listener, admin and limits stay as started; keys, policy and trust reload, all or
        // nothing.
        fresh.listen = settings_.config.listen;
        fresh.limits = settings_.config.limits;
        auto next = load_state(fresh, *settings_.tokens, fresh.strict_start);
        // A reload may bring keys in, never take a served one away because its source broke:
        // then nothing changes, as when strict_start is set.
        std::vector<std::string> lost;
        {
            std::lock_guard lock(mutex_);
            for (const auto& u : next->unavailable)
                if (state_->keys.by_name(u.name)) lost.push_back(u.reason);
        }
        if (!lost.empty()) throw KeyStoreError(std::move(lost));
        auto next_tls = make_server_tls_context(fresh);
        shared_->replace_handler(handler_for(next, settings_.hooks));
        shared_->rate_limiter.configure(fresh.rate_limits);
        server_->replace_tls(next_tls);
        {
            std::lock_guard lock(mutex_);
            state_ = next;
            certificate_expiry_ = expiry_of(fresh);
        }
        result.ok = true;
        result.keys = next->keys.keys().size();
        result.unavailable = next->unavailable;
        log_unavailable(*next);
        log_line(Level::Info, "reloaded " + std::to_string(result.keys) +
                                  " key(s) and the TLS certificate, key, client CA" +
                                  (fresh.crl_file.empty() ? "" : " and CRL"));
    } catch (const KeyStoreError& e) {
        result.problems = e.problems();
    } catch (const std::exception& e) {
        result.problems = {e.what()};
    }
    shared_->metrics.count_reload(result.ok);
    if (!result.ok) {
        std::string all;
        for (const auto& p : result.problems)
            all += (all.empty() ? "" : "; ") + p;
        log_line(Level::Error, "reload failed, keeping the previous keys and trust: " + all);
    }
    return result;
}

// Stop accepting; open connections keep being served (a load balancer moves traffic away while
// /healthz says 503).
void Service::drain(const std::string& why) {
    {
        std::lock_guard lock(mutex_);
        if (draining_) return;
        draining_ = true;
    }
    log_line(Level::Info, why + ": draining: no new connections, open ones are still served");
    asio::post(io_, [this] {
        server_->stop();
        for (auto& c : shared_->handshakes.handles())
            if (auto conn = c.lock()) conn->evict();
    });
}

// Drain, then let every connection finish what it has read and exit; bounded by
// drain_timeout_ms.
void Service::stop(const std::string& why) {
    drain(why);
    log_line(Level::Info, why +
                              ": stopping once open connections have answered what they read, "
                              "at most " +
                              std::to_string(settings_.config.drain_timeout.count()) + " ms");
    asio::post(io_, [this] {
        for (auto& c : shared_->tracked())
            c->drain();
        drain_deadline_ = std::chrono::steady_clock::now() + settings_.config.drain_timeout;
        watch_drain();
    });
}

void Service::watch_drain() {
    bool idle = shared_->tracked().empty() && shared_->handshakes.size() == 0;
    bool late = std::chrono::steady_clock::now() >= drain_deadline_;
    if (idle || late) {
        if (!idle)
            log_line(Level::Warn, "drain timed out: closing " +
                                      std::to_string(shared_->tracked().size()) +
                                      " connection(s) with requests still open");
        io_.stop(); // run() then stops the admin listener

        return;
    }
    drain_timer_.expires_after(std::chrono::milliseconds(20));
    drain_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) watch_drain();
    });
}

MetricsSnapshot Service::snapshot() const {
    MetricsSnapshot s;
    s.in_flight = shared_->operations_in_flight.load();
    s.handshaking = shared_->handshakes.size();
    s.authenticated = shared_->authenticated.load();
    s.buffered_bytes = shared_->buffered_bytes.load();
    s.buffer_capacity = shared_->buffer_capacity.load();
    s.access_log_lost_lines = log_.lost_lines();
    std::lock_guard lock(mutex_);
    s.keys = state_->keys.keys().size();
    s.keys_unavailable = state_->unavailable.size();
    s.draining = draining_;
    s.certificate_expiry = certificate_expiry_;
    return s;
}

std::string Service::keys_json() const {
    std::shared_ptr<const ServingState> state;
    {
        std::lock_guard lock(mutex_);
        state = state_;
    }
    nlohmann::json keys = nlohmann::json::array();
    for (const auto& key : state->keys.keys()) {
        const KeyPolicy& policy = state->policies.policy_for(key->name);
        nlohmann::json allow = nlohmann::json::array(), clients = nlohmann::json::array();
        for (auto p : policy.allow)
            allow.push_back(std::string(to_string(p)));
        for (const auto& c : policy.clients)
            clients.push_back(c.text());
        unsigned char digest[32];
        unsigned int len = 0;
        EVP_Digest(key->spki.data(), key->spki.size(), digest, &len, EVP_sha256(), nullptr);
        keys.push_back({{"name", key->name},
                        {"type", key->description},
                        {"bits", key->bits},
                        {"curve", key->curve},
                        {"ski", to_hex(key->ski)},
                        {"spki_sha256", to_hex(ByteView(digest, len))},
                        {"allow", allow},
                        {"clients", clients},
                        {"tls12_dhe", policy.tls12_dhe},
                        {"allow_sha1", policy.allow_sha1}});
    }
    nlohmann::json unavailable = nlohmann::json::array();
    for (const auto& u : state->unavailable)
        unavailable.push_back({{"name", u.name}, {"reason", u.reason}});
    return nlohmann::json({{"keys", keys}, {"unavailable", unavailable}}).dump(2) + "\n";
}

AdminActions Service::admin_actions() {
    AdminActions a;
    a.metrics = [this] {
        return AdminResponse{200, "text/plain; version=0.0.4; charset=utf-8",
                             shared_->metrics.exposition(snapshot())};
    };
    a.health = [this](bool detailed) {
        MetricsSnapshot s = snapshot();
        if (s.draining) return text(503, "draining\n");
        if (s.keys == 0) return text(503, "no keys\n");
        if (s.keys_unavailable == 0) return text(200, "ok\n");
        // Still 200: the keys that loaded are served, and taking this keyserver out of its
        // balancer would cost every tenant the keys of one broken source.
        std::string names;
        if (detailed) {
            std::lock_guard lock(mutex_);
            for (const auto& u : state_->unavailable)
                names += (names.empty() ? ": " : ", ") + u.name;
        }
        return text(200, "degraded: " + std::to_string(s.keys_unavailable) + " key(s) unavailable" +
                             names + "\n");
    };
    a.drain = [this] {
        drain("POST /drain");
        return text(200, "draining: no new connections; open ones finish what they have read\n");
    };
    a.reload = [this] {
        ReloadResult r = reload();
        if (r.ok) {
            nlohmann::json unavailable = nlohmann::json::array();
            for (const auto& u : r.unavailable)
                unavailable.push_back({{"name", u.name}, {"reason", u.reason}});
            return json(200, {{"result", "ok"}, {"keys", r.keys}, {"unavailable", unavailable}});
        }
        return json(422, {{"result", "error"},
                          {"kept", "the previous keys and trust stay in service"},
                          {"problems", r.problems}});
    };
    a.keys = [this] { return AdminResponse{200, "application/json", keys_json()}; };
    return a;
}

} // namespace keyless::keyserver
