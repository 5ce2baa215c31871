#include "client.hpp"

#include "fork_locks.hpp"
#include "io_core.hpp"

#include <openssl/provider.h>

#include <pthread.h>

#include <set>

namespace keyless::client {

namespace {

// Every live I/O core in this process. pthread_atfork handlers take no argument, so they need a
// process-wide list to find the cores whose sockets a child must drop. The list is immortal on
// purpose: the provider is torn down from inside OPENSSL_cleanup(), after this library's static
// destructors have run, and must still be able to deregister its core.
struct CoreRegistry {
    std::mutex mutex;
    std::set<IoCore*> cores;
};

CoreRegistry& registry() {
    static CoreRegistry* immortal = std::make_unique<CoreRegistry>().release();
    return *immortal;
}

// Lock order: every Client's and extension support's lock (fork_locks.hpp), then the core
// registry, then each core's.
void prepare_fork() {
    lock_for_fork();
    registry().mutex.lock();
    for (IoCore* core : registry().cores)
        core->prepare_fork();
}
void parent_after_fork() {
    for (IoCore* core : registry().cores)
        core->parent_after_fork();
    registry().mutex.unlock();
    unlock_after_fork();
}
void child_after_fork() {
    for (IoCore* core : registry().cores)
        core->child_after_fork();
    registry().cores.clear();
    registry().mutex.unlock();
    unlock_after_fork();
}

// At process exit, stop every I/O thread before OPENSSL_cleanup() runs: a thread that ends while
// OpenSSL tears itself down frees its OpenSSL thread state into freed structures (haproxy's old
// worker aborted in malloc on reload). This object's destructor is registered when keyless.so is
// loaded, after OpenSSL registered its own exit handler, so it runs first.
struct StopThreadsAtExit {
    ~StopThreadsAtExit() {
        std::lock_guard lock(registry().mutex);
        for (IoCore* core : registry().cores)
            core->stop();
    }
} stop_threads_at_exit;

// A forked child's inherited core: its I/O thread and its locks are the parent's, so it is never
// destroyed (that would join a thread that is not there), only kept out of the way, once per fork.
void abandon(std::shared_ptr<IoCore> core) {
    (void)std::make_unique<std::shared_ptr<IoCore>>(std::move(core)).release();
}

} // namespace

void install_fork_handlers() {
    static std::once_flag once;
    std::call_once(once, [] { pthread_atfork(prepare_fork, parent_after_fork, child_after_fork); });
}

Client::Client(Settings settings, bool process_exit_teardown, HostLookup lookup)
    : settings_(std::move(settings)), process_exit_teardown_(process_exit_teardown),
      lookup_(std::move(lookup)) {
    install_fork_handlers();
    register_fork_lock(mutex_, ForkLockRank::Client);
}

Client::~Client() {
    unregister_fork_lock(mutex_);
    std::lock_guard lock(mutex_);
    // The provider is torn down from inside OPENSSL_cleanup() at exit: freeing a library context
    // or TLS context there corrupts the heap (seen as haproxy's old worker aborting on reload).
    // Then they are released on purpose; the I/O thread is still stopped and joined below.
    if (process_exit_teardown_) {
        (void)tls_.release();
        (void)libctx_.release();
    }
    if (core_ && core_->forked()) {
        abandon(std::move(core_)); // a parent's core: see core()
        return;
    }
    if (core_) {
        {
            std::lock_guard cores(registry().mutex);
            registry().cores.erase(core_.get());
        }
        core_->stop(!process_exit_teardown_);
        core_.reset(); // before tls_ and libctx_, which its connections use
    }
    if (!process_exit_teardown_ && default_provider_) OSSL_PROVIDER_unload(default_provider_);
}

void Client::prepare() {
    if (prepared_.load(std::memory_order_acquire)) return;
    std::lock_guard lock(mutex_);
    if (tls_) return;
    ossl::ErrorScope errors; // runs inside OpenSSL calls (key loading): leave the caller's queue be
    if (!libctx_) {
        ossl::LibCtx ctx(OSSL_LIB_CTX_new());
        OSSL_PROVIDER* provider = ctx ? OSSL_PROVIDER_load(ctx.get(), "default") : nullptr;
        if (!provider)
            throw SettingsError("keyless provider: cannot load OpenSSL's default provider for "
                                "the keyserver connection: " +
                                errors.text());
        libctx_ = std::move(ctx);
        default_provider_ = provider;
        ready_libctx_.store(libctx_.get(), std::memory_order_release);
    }
    if (settings_.client_cert.empty())
        throw SettingsError("keyless provider: no client certificate for the keyserver "
                            "(set client_cert in the provider's openssl.cnf section, or "
                            "KEYLESS_CLIENT_CERT)");
    if (settings_.ca_file.empty())
        throw SettingsError("keyless provider: no CA to verify the keyserver (set ca_file in the "
                            "provider's openssl.cnf section, or KEYLESS_CA_FILE)");
    ossl::SslCtx tls(SSL_CTX_new_ex(libctx_.get(), nullptr, TLS_client_method()));
    if (!tls) throw SettingsError("keyless provider: cannot create TLS context: " + errors.text());
    SSL_CTX_set_min_proto_version(tls.get(), TLS1_2_VERSION);
    SSL_CTX_set_mode(tls.get(),
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(tls.get(), settings_.client_cert.c_str()) != 1)
        throw SettingsError("keyless provider: cannot load client_cert " + settings_.client_cert +
                            ": " + errors.text());
    if (SSL_CTX_use_PrivateKey_file(tls.get(), settings_.client_key.c_str(), SSL_FILETYPE_PEM) != 1)
        throw SettingsError("keyless provider: cannot load client_key " + settings_.client_key +
                            ": " + errors.text());
    if (SSL_CTX_check_private_key(tls.get()) != 1)
        throw SettingsError("keyless provider: client_key " + settings_.client_key +
                            " does not match client_cert " + settings_.client_cert);
    if (SSL_CTX_load_verify_locations(tls.get(), settings_.ca_file.c_str(), nullptr) != 1)
        throw SettingsError("keyless provider: cannot load ca_file " + settings_.ca_file + ": " +
                            errors.text());
    SSL_CTX_set_verify(tls.get(), SSL_VERIFY_PEER, nullptr);
    tls_ = std::move(tls);
    prepared_.store(true, std::memory_order_release);
}

OSSL_LIB_CTX* Client::libctx() {
    if (OSSL_LIB_CTX* ready = ready_libctx_.load(std::memory_order_acquire)) return ready;
    prepare();
    return ready_libctx_.load(std::memory_order_acquire);
}

std::shared_ptr<IoCore> Client::core() {
    std::lock_guard lock(mutex_);
    if (core_ && core_->failed()) {
        // Its I/O thread failed and has ended (its calls failed with the reason): a new core.
        {
            std::lock_guard cores(registry().mutex);
            registry().cores.erase(core_.get());
        }
        core_.reset();
    }
    // A forked child: the parent's I/O thread does not exist here, and its mutexes and TLS
    // state belong to the parent.
    if (core_ && core_->forked()) abandon(std::move(core_));
    if (!core_) {
        core_ = std::make_shared<IoCore>(tls_.get(), settings_, lookup_);
        std::lock_guard cores(registry().mutex);
        registry().cores.insert(core_.get());
    }
    return core_;
}

std::shared_ptr<Call> Client::make_call(const KeyUri& uri, protocol::Operation request,
                                        std::optional<protocol::Operation> fallback,
                                        int notify_fd) {
    prepare();
    request.key_name = uri.key_id;
    if (fallback) fallback->key_name = uri.key_id;
    const auto& endpoints = uri.endpoints.empty() ? settings_.servers : uri.endpoints;
    auto call = std::make_shared<Call>(endpoints, std::move(request),
                                       std::chrono::steady_clock::now() + settings_.request_timeout,
                                       std::move(fallback));
    call->notify_fd = notify_fd;
    if (endpoints.empty())
        call->complete(std::nullopt, Failure::Unreachable,
                       uri.to_string() + " names no keyserver, and the provider's openssl.cnf "
                                         "section sets no servers = HOST:PORT[,HOST:PORT...]");
    return call;
}

std::shared_ptr<Call> Client::start(const KeyUri& uri, protocol::Operation request, int notify_fd,
                                    std::optional<protocol::Operation> fallback) {
    auto call = make_call(uri, std::move(request), std::move(fallback), notify_fd);
    if (!call->done()) core()->submit(call);
    return call;
}

std::shared_ptr<Call> Client::run(const KeyUri& uri, protocol::Operation request,
                                  std::optional<protocol::Operation> fallback) {
    auto call = make_call(uri, std::move(request), std::move(fallback), -1);
    if (!call->done()) core()->submit_and_wait(call);
    return call;
}

} // namespace keyless::client
