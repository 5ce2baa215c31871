#include "flags.hpp"

#include "bounded_number.hpp"
#include "version.hpp"

#include <boost/program_options.hpp>

#include <cstdlib>
#include <iostream>
#include <span>

namespace keyless::keyserver {

namespace {

namespace po = boost::program_options;

constexpr const char* kAbout = R"(usage: keyserver [options]

Serves RSA, EC, Ed25519, Ed448 and ML-DSA private-key operations to keyless edges (the keyless.so
OpenSSL provider, or any gokeyless v1.0 client) over mutual TLS. Flags override the config file.
)";

constexpr const char* kNotes = R"(
Default key policy: any client with a certificate from the client CA, sign-tls only (strict TLS
handshake inputs). Other operations (sign-tls-client, sign-digest, rsa-decrypt-tls,
rsa-decrypt-raw), TLS 1.2 DHE and SHA-1 opt-ins and client restrictions are set per key in the
config file ("keys": {"NAME": {"allow": [...], "clients": [...]}}); limits in "limits".

Signals: SIGHUP reloads the config file, keys, policies and TLS trust (certificate, key, client CA,
CRL), all or nothing; SIGTERM/SIGINT drain (stop accepting, answer what was read, exit 0 within
drain_timeout_ms; a second signal exits at once); SIGUSR1 reopens the access log.
)";

constexpr unsigned kMaxThreads = 256;

// A flag that sets one text setting of the config file.
struct TextFlag {
    const char* name;
    const char* value_name;
    const char* help;
    std::string Config::*setting;
};

// In the order --help shows them, with the flags of other kinds between (options() below).
constexpr TextFlag kConfigFlags[] = {
    {"listen", "IP:PORT", "address to listen on (default 127.0.0.1:2407; port 0 picks a free one)",
     &Config::listen},
    {"keys", "DIR", "directory of PEM private keys; each key is named by its file stem",
     &Config::keys_dir},
    {"cert", "FILE", "server certificate chain (PEM)", &Config::cert_file},
    {"key", "FILE", "server private key (PEM)", &Config::key_file},
    {"client-ca", "FILE", "CA certificates that client certificates must chain to (PEM)",
     &Config::client_ca_file},
    {"access-log", "FILE|-", "one JSON line per operation, appended to FILE or written to stdout",
     &Config::access_log},
};
constexpr TextFlag kLaterConfigFlags[] = {
    {"admin", "IP:PORT|off",
     "admin HTTP listener: GET /metrics /healthz /keys, POST /drain /reload (default "
     "127.0.0.1:2406; port 0 picks a free one; another address than loopback needs "
     "admin.token_file in the config)",
     &Config::admin_listen},
    {"ready-file", "FILE",
     "write the bound IP:PORT to FILE once listening, and the admin listener's address (or "
     "\"off\") on the second line (for scripts and tests)",
     &Config::ready_file},
};

void add_text_flags(po::options_description_easy_init add, std::span<const TextFlag> flags) {
    for (const auto& f : flags)
        add(f.name, po::value<std::string>()->value_name(f.value_name), f.help);
}

po::options_description visible_options() {
    po::options_description d(100, 76); // descriptions from column 25
    d.add_options()("config", po::value<std::string>()->value_name("FILE"),
                    "JSON config file (all settings; see docs/operations.md)");
    add_text_flags(d.add_options(), kConfigFlags);
    d.add_options()("threads", po::value<std::string>()->value_name("N"),
                    "worker threads (default: one per core)")(
        "allow-insecure-key-permissions",
        "load key files that group or others can read, or that another user owns, from a "
        "directory others can write")("allow-core-dumps",
                                      "leave core dumps enabled (by default the keyserver disables "
                                      "them at start: a core would hold the private keys)");
    add_text_flags(d.add_options(), kLaterConfigFlags);
    d.add_options()("check", "validate config, keys and certificates, print a summary, and exit")(
        "version", "print the version and exit")("help", "show this help");
    return d;
}

po::variables_map parse(const std::vector<std::string>& args,
                        const po::options_description& shown) {
    po::options_description all;
    all.add(shown).add_options()(",h", "")("stray", po::value<std::vector<std::string>>(), "");
    po::positional_options_description stray;
    stray.add("stray", -1);
    po::variables_map vm;
    try {
        // Whole names only: an abbreviation that matches today could mean another flag tomorrow.
        po::store(
            po::command_line_parser(args)
                .options(all)
                .positional(stray)
                .style(po::command_line_style::unix_style ^ po::command_line_style::allow_guessing)
                .run(),
            vm);
    } catch (const po::error& e) {
        throw ConfigError(std::string(e.what()) + " (see --help)");
    }
    if (vm.count("stray"))
        throw ConfigError("unexpected argument '" +
                          vm["stray"].as<std::vector<std::string>>().front() +
                          "' (flags start with --; see --help)");
    return vm;
}

void apply(const po::variables_map& vm, std::span<const TextFlag> flags, Config& config) {
    for (const auto& f : flags)
        if (vm.count(f.name)) config.*f.setting = vm[f.name].as<std::string>();
}

} // namespace

Flags parse_flags(const std::vector<std::string>& args) {
    auto shown = visible_options();
    auto vm = parse(args, shown);
    if (vm.count("help") || vm.count("-h")) {
        std::cout << kAbout << "\n" << shown << kNotes;
        std::exit(0);
    }
    if (vm.count("version")) {
        std::cout << "keyserver " << keyless::version() << " (" << keyless::revision() << ")\n";
        std::exit(0);
    }
    Flags f;
    if (vm.count("config")) {
        f.config_file = vm["config"].as<std::string>();
        load_config_file(f.config_file, f.config);
    }
    apply(vm, kConfigFlags, f.config);
    apply(vm, kLaterConfigFlags, f.config);
    if (vm.count("threads")) {
        const auto& text = vm["threads"].as<std::string>();
        auto n = bounded_number(text, 0, kMaxThreads);
        if (!n)
            throw ConfigError("the argument ('" + text +
                              "') for option '--threads' is invalid: a number from 0 to " +
                              std::to_string(kMaxThreads) + " (see --help)");
        f.config.threads = static_cast<unsigned>(*n);
    }
    if (vm.count("allow-insecure-key-permissions")) f.config.allow_insecure_key_permissions = true;
    f.allow_core_dumps = vm.count("allow-core-dumps") > 0;
    f.check = vm.count("check") > 0;
    return f;
}

} // namespace keyless::keyserver
