#include "settings.hpp"

#include <cstdlib>

namespace keyless::client {

namespace {

struct Source {
    const std::function<std::string(const char*)>& lookup;
    // The environment wins over openssl.cnf.
    std::string get(const char* conf_name, const char* env_name) const {
        if (const char* env = std::getenv(env_name); env && *env) return env;
        return lookup(conf_name);
    }
    void millis(const char* conf_name, const char* env_name, std::chrono::milliseconds& out) const {
        std::string v = get(conf_name, env_name);
        if (v.empty()) return;
        try {
            size_t used = 0;
            long n = std::stol(v, &used);
            if (used == v.size() && n >= 1 && n <= 600000) {
                out = std::chrono::milliseconds(n);
                return;
            }
        } catch (const std::exception&) {
        }
        throw SettingsError(std::string("keyless provider: ") + conf_name + " = '" + v +
                            "' must be a number of milliseconds from 1 to 600000");
    }
};

} // namespace

Settings resolve_settings(const std::function<std::string(const char*)>& lookup) {
    Source src{lookup};
    Settings s;
    s.client_cert = src.get("client_cert", "KEYLESS_CLIENT_CERT");
    s.client_key = src.get("client_key", "KEYLESS_CLIENT_KEY");
    s.ca_file = src.get("ca_file", "KEYLESS_CA_FILE");
    src.millis("connect_timeout_ms", "KEYLESS_CONNECT_TIMEOUT_MS", s.connect_timeout);
    src.millis("request_timeout_ms", "KEYLESS_REQUEST_TIMEOUT_MS", s.request_timeout);
    if (std::string v = src.get("connections_per_server", "KEYLESS_CONNECTIONS_PER_SERVER");
        !v.empty()) {
        size_t used = 0;
        long n = -1;
        try {
            n = std::stol(v, &used);
        } catch (const std::exception&) {
        }
        if (used != v.size() || n < 1 || n > 64)
            throw SettingsError("keyless provider: connections_per_server = '" + v +
                                "' must be a number from 1 to 64");
        s.connections_per_server = static_cast<size_t>(n);
    }
    if (std::string v = src.get("servers", "KEYLESS_SERVERS"); !v.empty()) {
        try {
            s.servers = parse_endpoint_list(v, "servers = " + v);
        } catch (const UriError& e) {
            throw SettingsError(std::string("keyless provider: ") + e.what());
        }
    }
    if (s.client_key.empty()) s.client_key = s.client_cert; // a combined PEM works too
    return s;
}

} // namespace keyless::client
