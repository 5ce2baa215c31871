#include "app.hpp"

#include "config/config.hpp"
#include "net/server.hpp"
#include "observe/access_log.hpp"
#include "observe/log.hpp"
#include "ops/dispatch.hpp"
#include "service.hpp"
#include "version.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

namespace keyless::keyserver {

namespace {

constexpr const char* kUsage = R"(usage: keyserver [options]

Serves RSA, EC, Ed25519, Ed448 and ML-DSA private-key operations to keyless edges (the keyless.so OpenSSL provider, or any
gokeyless v1.0 client) over mutual TLS. Flags override the config file.

  --config FILE         JSON config file (all settings; see docs/operations.md)
  --listen IP:PORT      address to listen on (default 127.0.0.1:2407; port 0 picks a free one)
  --keys DIR            directory of PEM private keys; each key is named by its file stem
  --cert FILE           server certificate chain (PEM)
  --key FILE            server private key (PEM)
  --client-ca FILE      CA certificates that client certificates must chain to (PEM)
  --access-log FILE|-   one JSON line per operation, appended to FILE or written to stdout
  --threads N           worker threads (default: one per core)
  --allow-insecure-key-permissions
                        load key files that group or others can read, or that another user
                        owns, from a directory others can write
  --allow-core-dumps    leave core dumps enabled (by default the keyserver disables them at start:
                        a core would hold the private keys)
  --admin IP:PORT|off   admin HTTP listener: GET /metrics /healthz /keys, POST /drain /reload
                        (default 127.0.0.1:2406; port 0 picks a free one; another address than
                        loopback needs admin.token_file in the config)
  --ready-file FILE     write the bound IP:PORT to FILE once listening, and the admin listener's
                        address (or "off") on the second line (for scripts and tests)
  --check               validate config, keys and certificates, print a summary, and exit
  --version             print the version and exit
  --help                show this help

Default key policy: any client with a certificate from the client CA, sign-tls only (strict TLS
handshake inputs). Other operations (sign-tls-client, sign-digest, rsa-decrypt-tls,
rsa-decrypt-raw), TLS 1.2 DHE and SHA-1 opt-ins and client restrictions are set per key in the
config file ("keys": {"NAME": {"allow": [...], "clients": [...]}}); limits in "limits".

Signals: SIGHUP reloads the config file, keys, policies and TLS trust (certificate, key, client CA,
CRL), all or nothing; SIGTERM/SIGINT drain (stop accepting, answer what was read, exit 0 within
drain_timeout_ms; a second signal exits at once); SIGUSR1 reopens the access log.
)";

struct Options {
    Config config;
    std::string config_file;
    bool check = false;
    bool allow_core_dumps = false;
};

// Flags are applied on top of the config file, so they are parsed twice: once to find --config,
// once to override it.
Options parse_args(const std::vector<std::string>& args) {
    Options o;
    for (size_t i = 0; i < args.size(); ++i)
        if (args[i] == "--config" && i + 1 < args.size()) o.config_file = args[i + 1];
    if (!o.config_file.empty()) load_config_file(o.config_file, o.config);
    Config& c = o.config;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw ConfigError("flag " + a + " needs a value");
            return args[++i];
        };
        auto number = [&](unsigned long max) {
            const std::string& v = value();
            try {
                size_t used = 0;
                unsigned long n = std::stoul(v, &used);
                if (used == v.size() && n <= max) return n;
            } catch (const std::exception&) {
            }
            throw ConfigError("flag " + a + " needs a number from 0 to " + std::to_string(max));
        };
        if (a == "--help" || a == "-h") {
            std::cout << kUsage;
            std::exit(0);
        } else if (a == "--version") {
            std::cout << "keyserver " << keyless::version() << " (" << keyless::revision() << ")\n";
            std::exit(0);
        } else if (a == "--admin") {
            c.admin_listen = value();
        } else if (a == "--config") {
            value();
        } else if (a == "--listen") {
            c.listen = value();
        } else if (a == "--keys") {
            c.keys_dir = value();
        } else if (a == "--cert") {
            c.cert_file = value();
        } else if (a == "--key") {
            c.key_file = value();
        } else if (a == "--client-ca") {
            c.client_ca_file = value();
        } else if (a == "--access-log") {
            c.access_log = value();
        } else if (a == "--threads") {
            c.threads = static_cast<unsigned>(number(256));
        } else if (a == "--allow-insecure-key-permissions") {
            c.allow_insecure_key_permissions = true;
        } else if (a == "--ready-file") {
            c.ready_file = value();
        } else if (a == "--allow-core-dumps") {
            o.allow_core_dumps = true;
        } else if (a == "--check") {
            o.check = true;
        } else {
            throw ConfigError("unknown flag '" + a + "' (see --help)");
        }
    }
    return o;
}

void print_summary(const ServingState& state) {
    std::cout << "config ok: " << state.keys.keys().size() << " key(s)\n";
    for (const auto& key : state.keys.keys()) {
        const KeyPolicy& p = state.policies.policy_for(key->name);
        std::string allow, clients;
        for (auto perm : p.allow)
            allow += (allow.empty() ? "" : ",") + std::string(to_string(perm));
        for (const auto& s : p.clients)
            clients += (clients.empty() ? "" : ",") + s.text();
        std::cout << "  " << key->name << ": " << key->description
                  << " ski=" << keyless::to_hex(key->ski) << " allow=" << allow
                  << " clients=" << clients << "\n";
        if (!key->source_details.empty())
            std::cout << "    " << key->path << " in " << key->source_details << "\n";
    }
}

// Private keys are in this process's memory: no core file, and no ptrace by other processes of
// the same user, unless the operator asks.
void disable_core_dumps() {
    struct rlimit none {};
    if (::setrlimit(RLIMIT_CORE, &none) != 0 || ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        throw std::runtime_error(std::string("cannot disable core dumps: ") + std::strerror(errno) +
                                 " (--allow-core-dumps to run anyway)");
}

int run(const std::vector<std::string>& args, const AppHooks& hooks) {
    const Options options = parse_args(args);
    const Config& config = options.config;
    if (!options.allow_core_dumps) disable_core_dumps();
    auto problems = missing_settings(config);
    if (!problems.empty()) {
        for (const auto& p : problems)
            log_line(Level::Error, p);
        return 2;
    }
    auto tokens = std::make_shared<Pkcs11Registry>();
    // --check fails on any problem; a start serves what loads unless strict_start.
    auto state = load_state(config, *tokens, options.check || config.strict_start);
    auto tls = make_server_tls_context(config);
    parse_listen_address(config.listen); // both addresses are checked before anything starts
    if (config.admin_listen != "off") parse_listen_address(config.admin_listen);
    if (options.check) {
        if (state->keys.keys().empty())
            throw ConfigError("no keys in " + config.keys_dir + " (*.pem or *.key files)");
        AccessLog probe(config.access_log); // can it be opened for append?
        for (const auto& w : tls_warnings(config))
            std::cout << "warning: " << w << "\n";
        print_summary(*state);
        return 0;
    }
    for (const auto& w : tls_warnings(config))
        log_line(Level::Warn, w);
    log_unavailable(*state);
    if (state->keys.keys().empty())
        log_line(Level::Warn, "no keys in " + config.keys_dir + ": /healthz answers 503");

    ServiceSettings settings;
    settings.config = config;
    settings.allow_core_dumps = options.allow_core_dumps;
    settings.reread_config = [args] { return parse_args(args).config; };
    settings.hooks = hooks;
    settings.tokens = tokens;
    Service service(std::move(settings), state, tls);
    return service.run();
}

} // namespace

int run_keyserver(const std::vector<std::string>& args, const AppHooks& hooks) {
    try {
        return run(args, hooks);
    } catch (const KeyStoreError& e) {
        for (const auto& p : e.problems())
            log_line(Level::Error, p);
    } catch (const std::exception& e) {
        log_line(Level::Error, e.what());
    }
    return 1;
}

} // namespace keyless::keyserver
