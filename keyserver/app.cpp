#include "app.hpp"

#include "access_log.hpp"
#include "config.hpp"
#include "dispatch.hpp"
#include "server.hpp"

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

Serves RSA, EC and Ed25519 private-key operations to keyless edges (the keyless.so OpenSSL provider, or any
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
  --ready-file FILE     write the bound IP:PORT to FILE once listening (for scripts and tests)
  --check               validate config, keys and certificates, print a summary, and exit
  --help                show this help

Default key policy: any client with a certificate from the client CA, sign-tls only (strict TLS
handshake inputs). Other operations (sign-tls-client, sign-digest, rsa-decrypt-tls,
rsa-decrypt-raw), TLS 1.2 DHE and SHA-1 opt-ins and client restrictions are set per key in the
config file ("keys": {"NAME": {"allow": [...], "clients": [...]}}); limits in "limits".

Signals: SIGHUP reloads the config file, keys, policies and TLS trust (certificate, key, client CA,
CRL), all or nothing; SIGTERM/SIGINT stop accepting and exit.
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

std::shared_ptr<const ServingState> load_state(const Config& config) {
    auto keys = KeyStore::load_directory(config.keys_dir, config.allow_insecure_key_permissions);
    for (const auto& [name, policy] : config.key_policies)
        if (!keys.by_name(name))
            throw ConfigError("'keys." + name + "': no key file named " + name + ".pem or " + name +
                              ".key in " + config.keys_dir);
    return std::make_shared<const ServingState>(ServingState{std::move(keys), config});
}

void print_summary(const ServingState& state) {
    std::cout << "config ok: " << state.keys.keys().size() << " key(s)\n";
    for (const auto& key : state.keys.keys()) {
        const KeyPolicy& p = state.config.policy_for(key->name);
        std::string allow, clients;
        for (auto perm : p.allow)
            allow += (allow.empty() ? "" : ",") + std::string(to_string(perm));
        for (const auto& s : p.clients)
            clients += (clients.empty() ? "" : ",") + s.text();
        std::cout << "  " << key->name << ": " << key->description
                  << " ski=" << keyless::to_hex(key->ski) << " allow=" << allow
                  << " clients=" << clients << "\n";
    }
}

std::shared_ptr<const RequestHandler> handler_for(std::shared_ptr<const ServingState> state,
                                                  const AppHooks& hooks) {
    auto dispatcher = std::make_shared<const Dispatcher>(std::move(state));
    if (hooks.wrap) return hooks.wrap(dispatcher);
    return dispatcher;
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
            std::cerr << "keyserver: " << p << "\n";
        return 2;
    }
    auto state = load_state(config);
    auto tls = make_server_tls_context(config);
    auto listen = parse_listen_address(config.listen);
    if (options.check) {
        print_summary(*state);
        return 0;
    }

    for (const auto& line :
         raise_fd_limit(config.limits.max_connections + config.limits.max_handshaking))
        std::cerr << "keyserver: " << line << "\n";
    asio::io_context io;
    AccessLog log(config.access_log);
    auto shared = std::make_shared<ServerShared>(io, config.limits, log, handler_for(state, hooks));
    Server server(io, tls, listen, shared);
    server.start();
    auto bound = server.local_endpoint();
    std::string where = (bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                                 : bound.address().to_string()) +
                        ":" + std::to_string(bound.port());
    std::cerr << "keyserver: listening on " << where << " with " << state->keys.keys().size()
              << " key(s), core dumps " << (options.allow_core_dumps ? "allowed" : "disabled")
              << "\n";
    if (!config.ready_file.empty()) {
        std::string tmp = config.ready_file + ".tmp";
        std::ofstream(tmp) << where << "\n";
        std::rename(tmp.c_str(), config.ready_file.c_str());
    }

    asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
    std::function<void(const boost::system::error_code&, int)> on_signal =
        [&](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                try {
                    Options reloaded = options;
                    if (!options.config_file.empty()) {
                        // Flags still override the file, as at start.
                        reloaded = parse_args(args);
                    }
                    // Listener and limits stay as started; keys, policy and trust reload, all
                    // or nothing.
                    reloaded.config.listen = config.listen;
                    reloaded.config.limits = config.limits;
                    auto next = load_state(reloaded.config);
                    auto next_tls = make_server_tls_context(reloaded.config);
                    shared->replace_handler(handler_for(next, hooks));
                    server.replace_tls(next_tls);
                    std::cerr << "keyserver: reloaded " << next->keys.keys().size()
                              << " key(s) and the TLS certificate, key, client CA"
                              << (reloaded.config.crl_file.empty() ? "" : " and CRL") << "\n";
                } catch (const std::exception& e) {
                    std::cerr << "keyserver: reload failed, keeping the previous keys and trust: "
                              << e.what() << "\n";
                }
                signals.async_wait(on_signal);
                return;
            }
            std::cerr << "keyserver: signal " << sig << ", stopping\n";
            server.stop();
            io.stop();
        };
    signals.async_wait(on_signal);

    unsigned threads =
        config.threads ? config.threads : std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i)
        pool.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& t : pool)
        t.join();
    return 0;
}

} // namespace

int run_keyserver(const std::vector<std::string>& args, const AppHooks& hooks) {
    try {
        return run(args, hooks);
    } catch (const KeyStoreError& e) {
        for (const auto& p : e.problems())
            std::cerr << "keyserver: " << p << "\n";
    } catch (const std::exception& e) {
        std::cerr << "keyserver: " << e.what() << "\n";
    }
    return 1;
}

} // namespace keyless::keyserver
