// keyless-tool's command line. Each option is defined once (Boost.Program_options): the parser and
// --help come from the same definitions, and tests/check-man-pages.sh compares --help with
// keyless-tool(1).
#include "bounded_number.hpp"
#include "tool.hpp"
#include "version.hpp"

#include <boost/program_options.hpp>

#include <cstdlib>
#include <iostream>

namespace keyless::tool {

namespace {

namespace po = boost::program_options;

constexpr const char* kAbout = R"(usage: keyless-tool COMMAND URI [options]

Commands:
  check URI     proves the whole path: loads the keyless provider through OPENSSL_CONF (as a
                terminator would), fetches the public key, has the keyserver sign a TLS 1.3
                CertificateVerify and verifies it locally; fails with the provider's own error
                (module path, identity, key name or policy)
  ping URI      round trips to the keyserver(s) of URI (mTLS and reachability only: a Ping
                needs no permission on any key); prints min/avg/max milliseconds
  pubkey URI    prints the key's public key (PEM), fetched through the keyless provider
  stub URI      writes a key stub PEM (the URI and the public key) for nginx, haproxy, stunnel
  bench URI     keeps --concurrency TLS 1.3 signatures in flight for --seconds over
                --connections connections; prints ops/s, latency percentiles and this
                process's CPU per operation (the key's policy must allow sign-tls)

URI is keyless:HOST:PORT[,HOST:PORT...]/KEYID.

Options:
)";

constexpr const char* kNotes = R"(
Settings not given as options come from the KEYLESS_* environment variables, or from the keyless
section of the openssl.cnf that OPENSSL_CONF names (pubkey, stub).
)";

// A numeric option: its text is checked whole, within its range (bounded_number.hpp).
struct NumberOption {
    const char* name;
    const char* help;
    int Options::*field;
    unsigned long min, max;
};

constexpr NumberOption kNumbers[] = {
    {"count", "ping: number of pings (default 10)", &Options::count, 1, 100000},
    {"seconds", "bench: duration (default 5)", &Options::seconds, 1, 10000},
    {"concurrency", "bench: requests in flight (default 32)", &Options::concurrency, 1, 10000},
    {"connections",
     "bench: clients, each with its own I/O thread and connections_per_server connections to each "
     "keyserver, as N terminator processes (default 1)",
     &Options::connections, 1, 10000},
    {"threads",
     "bench: calling threads, each keeping its share of --concurrency in flight (default: one per "
     "request in flight, as a terminator's workers)",
     &Options::threads, 1, 10000},
};

po::options_description visible_options(Options& o) {
    po::options_description d(100, 76); // descriptions from column 25
    d.add_options()(
        "cert", po::value(&o.cert)->value_name("FILE"),
        "client certificate for the keyserver (else client_cert / KEYLESS_CLIENT_CERT)")(
        "key", po::value(&o.key)->value_name("FILE"),
        "client key (else client_key / KEYLESS_CLIENT_KEY; default: --cert)")(
        "ca", po::value(&o.ca)->value_name("FILE"),
        "CA for the keyserver's certificate (else ca_file / KEYLESS_CA_FILE)");
    for (const auto& n : kNumbers)
        d.add_options()(n.name, po::value<std::string>()->value_name("N"), n.help);
    d.add_options()("json", po::bool_switch(&o.json),
                    "bench: one JSON object instead of text and the live progress line")(
        "digest", po::bool_switch(&o.digest),
        "bench: sign SHA-256 digests as gokeyless clients and openssl req do (RSA-PSS or ECDSA "
        "opcodes; the key's policy must allow sign-digest) instead of TLS 1.3 CertificateVerify "
        "inputs")(",o", po::value(&o.out)->value_name("FILE"),
                  "stub: write to FILE (mode 644) instead of standard output")(
        "from-cert", po::value(&o.from_cert)->value_name("FILE"),
        "stub: take the public key from this certificate (or PUBLIC KEY PEM) instead of asking "
        "the keyserver (works offline)")("provider-dir",
                                         po::value(&o.provider_dir)->value_name("DIR"),
                                         "where keyless.so is, when OPENSSL_CONF does not load it")(
        "version", "print the version and exit")("help", "this help");
    return d;
}

void set_numbers(const po::variables_map& vm, Options& o) {
    for (const auto& n : kNumbers) {
        if (!vm.count(n.name)) continue;
        const auto& text = vm[n.name].as<std::string>();
        auto v = bounded_number(text, n.min, n.max);
        if (!v)
            die("the argument ('" + text + "') for option '--" + n.name +
                "' is invalid: a number from " + std::to_string(n.min) + " to " +
                std::to_string(n.max));
        o.*n.field = static_cast<int>(*v);
    }
}

} // namespace

Options parse_options(int argc, char** argv) {
    Options o;
    auto shown = visible_options(o);
    po::options_description all;
    all.add(shown).add_options()(",h", "")("args", po::value<std::vector<std::string>>(), "");
    po::positional_options_description args;
    args.add("args", -1);
    po::variables_map vm;
    try {
        // Whole names only: an abbreviation that matches today could mean another option later.
        po::store(
            po::command_line_parser(argc, argv)
                .options(all)
                .positional(args)
                .style(po::command_line_style::unix_style ^ po::command_line_style::allow_guessing)
                .run(),
            vm);
        po::notify(vm);
    } catch (const po::error& e) {
        die(std::string(e.what()) + " (see --help)");
    }
    if (vm.count("help") || vm.count("-h")) {
        std::cout << kAbout << shown << kNotes;
        std::exit(0);
    }
    if (vm.count("version")) {
        std::cout << "keyless-tool " << keyless::version() << " (" << keyless::revision() << ")\n";
        std::exit(0);
    }
    set_numbers(vm, o);
    auto words =
        vm.count("args") ? vm["args"].as<std::vector<std::string>>() : std::vector<std::string>{};
    if (words.size() != 2) die("expected COMMAND URI (see --help)");
    o.command = words[0];
    o.uri = words[1];
    // Options become the provider's environment overrides, so pubkey/stub see them too.
    if (!o.cert.empty()) setenv("KEYLESS_CLIENT_CERT", o.cert.c_str(), 1);
    if (!o.key.empty()) setenv("KEYLESS_CLIENT_KEY", o.key.c_str(), 1);
    if (!o.ca.empty()) setenv("KEYLESS_CA_FILE", o.ca.c_str(), 1);
    return o;
}

} // namespace keyless::tool
