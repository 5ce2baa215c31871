// The provider's keyserver client: private OpenSSL library context (default provider only, so the
// client's own TLS never recurses into keyless), the mTLS client context, and the I/O core, which
// is rebuilt lazily in a child process after fork().
#pragma once

#include "call.hpp"
#include "dns_cache.hpp"
#include "ossl.hpp"
#include "settings.hpp"

#include <atomic>
#include <memory>
#include <mutex>

namespace keyless::client {

class IoCore;

class Client {
  public:
    // `process_exit_teardown`: destroyed from inside OPENSSL_cleanup() at exit (the provider's
    // client), so OpenSSL objects are left to the exiting process, not freed; any other owner
    // (keyless-tool, tests) gets everything freed. `lookup`: how keyserver host names are looked
    // up (the system's resolver), off the I/O thread.
    explicit Client(Settings settings, bool process_exit_teardown = false,
                    HostLookup lookup = resolve_with_system);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Loads the private library context and the client certificate, key and CA (files are read
    // here, once: nginx's workers, forked later, may not be allowed to read them). Throws
    // SettingsError naming the file. Idempotent; after the first success it takes no lock.
    void prepare();
    OSSL_LIB_CTX* libctx(); // prepare()s first; no lock once it exists

    // Starts a request (one lock of the client, to find its I/O core); the returned call
    // completes within request_timeout_ms. `fallback`: the
    // same operation in gokeyless's form, sent instead to a keyserver without keyless's
    // extensions (see extension_support.hpp).
    std::shared_ptr<Call> start(const KeyUri& uri, protocol::Operation request, int notify_fd = -1,
                                std::optional<protocol::Operation> fallback = std::nullopt);
    // start() + wait(), for a caller that waits anyway: it reads its own reply when it wrote its
    // own request (one wake-up per call; io_core.hpp).
    std::shared_ptr<Call> run(const KeyUri& uri, protocol::Operation request,
                              std::optional<protocol::Operation> fallback = std::nullopt);

    const Settings& settings() const { return settings_; }

  private:
    // The call for `request`, or one already failed (done) when the URI names no keyserver.
    // `notify_fd` is set first, so an ASYNC job is woken even by a call that fails at once.
    std::shared_ptr<Call> make_call(const KeyUri& uri, protocol::Operation request,
                                    std::optional<protocol::Operation> fallback, int notify_fd);
    // The I/O core, made (again) when there is none, its thread failed, or this is a forked
    // child. Shared: a caller submitting on it keeps it alive while another replaces it.
    std::shared_ptr<IoCore> core();

    const Settings settings_;
    const bool process_exit_teardown_;
    const HostLookup lookup_;
    std::mutex mutex_; // guards the lazily built members below
    ossl::LibCtx libctx_;
    OSSL_PROVIDER* default_provider_ = nullptr; // in libctx_; unloaded with it
    ossl::SslCtx tls_;
    std::shared_ptr<IoCore> core_; // abandoned, never freed, in a forked child: see core()
    // Published once built (never changed after), for the lock-free fast paths.
    std::atomic<OSSL_LIB_CTX*> ready_libctx_{nullptr};
    std::atomic<bool> prepared_{false}; // tls_ is built
};

// Registers the process-wide fork handlers once. Called by Client; exposed for tests.
void install_fork_handlers();

} // namespace keyless::client
