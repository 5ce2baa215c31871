#include "config/config.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>

namespace keyless::keyserver {

namespace {

using nlohmann::json;

// Walks a JSON object, remembering where it is so every error names the offending key.
class Reader {
  public:
    Reader(const json& j, std::string path, std::string file)
        : j_(j), path_(std::move(path)), file_(std::move(file)) {
        if (!j_.is_object()) fail("must be an object");
    }

    [[noreturn]] void fail(const std::string& why, const std::string& key = {}) const {
        std::string where = path_.empty() ? key : key.empty() ? path_ : path_ + "." + key;
        throw ConfigError(file_ + ": " + (where.empty() ? "" : "'" + where + "' ") + why);
    }

    void reject_unknown(std::initializer_list<const char*> known) const {
        std::set<std::string> names(known.begin(), known.end());
        for (const auto& [k, v] : j_.items())
            if (!names.count(k)) fail("is not a known setting", k);
    }

    const json* find(const char* key) const {
        auto it = j_.find(key);
        return it == j_.end() ? nullptr : &*it;
    }

    void string(const char* key, std::string& out) const {
        if (auto* v = find(key)) {
            if (!v->is_string()) fail("must be a string", key);
            out = v->get<std::string>();
        }
    }
    void boolean(const char* key, bool& out) const {
        if (auto* v = find(key)) {
            if (!v->is_boolean()) fail("must be true or false", key);
            out = v->get<bool>();
        }
    }
    template <typename T> void number(const char* key, T& out, uint64_t min, uint64_t max) const {
        if (auto* v = find(key)) {
            if (!v->is_number_unsigned() || v->get<uint64_t>() < min || v->get<uint64_t>() > max)
                fail("must be a whole number from " + std::to_string(min) + " to " +
                         std::to_string(max),
                     key);
            out = static_cast<T>(v->get<uint64_t>());
        }
    }
    void millis(const char* key, std::chrono::milliseconds& out, uint64_t min, uint64_t max) const {
        uint64_t ms = static_cast<uint64_t>(out.count());
        number(key, ms, min, max);
        out = std::chrono::milliseconds(ms);
    }
    Reader child(const char* key) const {
        return Reader(j_.at(key), path_.empty() ? key : path_ + "." + key, file_);
    }
    const json& raw() const { return j_; }
    const std::string& path() const { return path_; }
    const std::string& file() const { return file_; }

  private:
    const json& j_;
    std::string path_;
    std::string file_;
};

RateLimit read_limits(const Reader& r) {
    r.reject_unknown({"ops_per_second", "burst", "max_in_flight"});
    RateLimit limit;
    uint64_t rate = 0, burst = 0;
    r.number("ops_per_second", rate, 0, 10'000'000);
    r.number("burst", burst, 0, 10'000'000);
    r.number("max_in_flight", limit.max_in_flight, 0, 1'000'000);
    limit.ops_per_second = static_cast<double>(rate);
    limit.burst = static_cast<double>(burst);
    return limit;
}

KeyPolicy read_policy(const Reader& r, bool with_limits) {
    if (with_limits)
        r.reject_unknown({"allow", "clients", "tls12_dhe", "allow_sha1", "limits", "pkcs11"});
    else
        r.reject_unknown({"allow", "clients", "tls12_dhe", "allow_sha1"});
    KeyPolicy policy;
    r.boolean("tls12_dhe", policy.tls12_dhe);
    r.boolean("allow_sha1", policy.allow_sha1);
    if (auto* allow = r.find("allow")) {
        if (!allow->is_array()) r.fail("must be a list of operations", "allow");
        policy.allow.clear();
        for (size_t i = 0; i < allow->size(); ++i) {
            const auto& item = (*allow)[i];
            std::string key = "allow[" + std::to_string(i) + "]";
            if (!item.is_string()) r.fail("must be a string", key);
            try {
                policy.allow.insert(parse_permission(item.get<std::string>()));
            } catch (const std::invalid_argument& e) {
                r.fail(e.what(), key);
            }
        }
    }
    if (auto* clients = r.find("clients")) {
        if (!clients->is_array() || clients->empty())
            r.fail("must be a non-empty list of client selectors", "clients");
        policy.clients.clear();
        for (size_t i = 0; i < clients->size(); ++i) {
            const auto& item = (*clients)[i];
            std::string key = "clients[" + std::to_string(i) + "]";
            if (!item.is_string()) r.fail("must be a string", key);
            try {
                policy.clients.push_back(ClientSelector::parse(item.get<std::string>()));
            } catch (const std::invalid_argument& e) {
                r.fail(e.what(), key);
            }
        }
    }
    return policy;
}

} // namespace

namespace {

// Each section of the config file, read into its part of Config (unknown keys refused by name).
void read_admin(Reader r, Config& c) {
    r.reject_unknown({"listen", "token_file"});
    r.string("listen", c.admin_listen);
    r.string("token_file", c.admin_token_file);
}

void read_tls(Reader r, Config& c) {
    r.reject_unknown({"cert", "key", "client_ca", "crl"});
    r.string("cert", c.cert_file);
    r.string("key", c.key_file);
    r.string("client_ca", c.client_ca_file);
    r.string("crl", c.crl_file);
}

void read_transport_limits(Reader r, Limits& l) {
    r.reject_unknown({"max_connections", "max_handshaking", "max_handshaking_per_source",
                      "max_in_flight_per_connection", "max_buffered_bytes_per_connection",
                      "max_buffered_bytes", "max_ping_payload", "max_frame_bytes",
                      "handshake_timeout_ms", "idle_timeout_ms"});
    r.number("max_connections", l.max_connections, 1, 1'000'000);
    r.number("max_handshaking", l.max_handshaking, 1, 1'000'000);
    r.number("max_handshaking_per_source", l.max_handshaking_per_source, 1, 1'000'000);
    r.number("max_in_flight_per_connection", l.max_in_flight_per_connection, 1, 65536);
    r.number("max_buffered_bytes_per_connection", l.max_buffered_bytes_per_connection, 65536,
             1u << 30);
    r.number("max_buffered_bytes", l.max_buffered_bytes, 65536, uint64_t{1} << 40);
    r.number("max_ping_payload", l.max_ping_payload, 0, 65535);
    r.number("max_frame_bytes", l.max_frame_bytes, 1024 + 8, 8 + 65535);
    r.millis("handshake_timeout_ms", l.handshake_timeout, 100, 600'000);
    r.millis("idle_timeout_ms", l.idle_timeout, 100, 86'400'000);
}

void read_pkcs11(Reader r, Pkcs11Settings& p) {
    r.reject_unknown({"module", "pin_file", "max_sessions", "session_wait_ms", "max_queue"});
    r.string("module", p.module);
    r.string("pin_file", p.pin_file);
    r.number("max_sessions", p.max_sessions, 1, 1024);
    r.millis("session_wait_ms", p.session_wait, 1, 600'000);
    r.number("max_queue", p.max_queue, 1, 1'000'000);
}

// "clients": {"SELECTOR": {"limits": {...}}}: rate limits per client identity.
void read_clients(Reader clients, Config& c) {
    for (const auto& [selector, value] : clients.raw().items()) {
        Reader entry(value, clients.path() + "." + selector, clients.file());
        entry.reject_unknown({"limits"});
        ClientSelector parsed;
        try {
            parsed = ClientSelector::parse(selector);
        } catch (const std::invalid_argument& e) {
            clients.fail(e.what(), selector);
        }
        RateLimit limit;
        if (entry.find("limits")) limit = read_limits(entry.child("limits"));
        c.rate_limits.clients.emplace_back(std::move(parsed), limit);
    }
}

// "keys": {"NAME": {policy, "pkcs11": URI, "limits": {...}}}.
void read_keys(Reader keys, Config& c) {
    for (const auto& [name, value] : keys.raw().items()) {
        if (!value.is_object()) keys.fail("must be an object", name);
        Reader key(value, keys.path() + "." + name, keys.file());
        c.policies.key_policies[name] = read_policy(key, true);
        std::string uri;
        key.string("pkcs11", uri);
        if (!uri.empty()) c.pkcs11_keys[name] = uri;
        if (key.find("limits")) c.rate_limits.keys[name] = read_limits(key.child("limits"));
    }
}

} // namespace

void load_config_file(const std::string& path, Config& c) {
    std::ifstream in(path);
    if (!in) throw ConfigError(path + ": cannot open config file");
    json j;
    try {
        j = json::parse(in);
    } catch (const json::parse_error& e) {
        throw ConfigError(path + ": invalid JSON: " + e.what());
    }
    Reader r(j, "", path);
    r.reject_unknown({"listen", "threads", "tls", "keys_dir", "allow_insecure_key_permissions",
                      "strict_start", "access_log", "limits", "default_policy", "default_limits",
                      "clients", "keys", "admin", "drain_timeout_ms", "pkcs11"});
    r.string("listen", c.listen);
    r.number("threads", c.threads, 0, 256);
    r.string("keys_dir", c.keys_dir);
    r.boolean("allow_insecure_key_permissions", c.allow_insecure_key_permissions);
    r.boolean("strict_start", c.strict_start);
    r.string("access_log", c.access_log);
    r.millis("drain_timeout_ms", c.drain_timeout, 0, 3'600'000);
    if (r.find("admin")) read_admin(r.child("admin"), c);
    if (r.find("tls")) read_tls(r.child("tls"), c);
    if (r.find("limits")) read_transport_limits(r.child("limits"), c.limits);
    if (r.find("pkcs11")) read_pkcs11(r.child("pkcs11"), c.pkcs11);
    if (r.find("default_policy"))
        c.policies.default_policy = read_policy(r.child("default_policy"), false);
    if (r.find("default_limits")) c.rate_limits.defaults = read_limits(r.child("default_limits"));
    if (r.find("clients")) read_clients(r.child("clients"), c);
    if (r.find("keys")) read_keys(r.child("keys"), c);
}

std::vector<std::string> missing_settings(const Config& c) {
    std::vector<std::string> problems;
    auto need = [&](const std::string& value, const char* what) {
        if (value.empty()) problems.push_back(std::string("missing ") + what);
    };
    need(c.cert_file, "server certificate (--cert or tls.cert)");
    need(c.key_file, "server private key (--key or tls.key)");
    need(c.client_ca_file, "client CA (--client-ca or tls.client_ca): mTLS is mandatory");
    if (c.pkcs11_keys.empty()) need(c.keys_dir, "key directory (--keys or keys_dir)");
    return problems;
}

} // namespace keyless::keyserver
