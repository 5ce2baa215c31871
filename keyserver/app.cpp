#include "app.hpp"

#include "config/config.hpp"
#include "flags.hpp"
#include "net/server.hpp"
#include "observe/access_log.hpp"
#include "observe/log.hpp"
#include "ops/dispatch.hpp"
#include "service.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

namespace keyless::keyserver {

namespace {

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
    const Flags options = parse_flags(args);
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
    settings.reread_config = [args] { return parse_flags(args).config; };
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
