#include "key/remote_call.hpp"

#include <openssl/async.h>

#include <sys/eventfd.h>
#include <unistd.h>

namespace keyless::provider {

namespace {

// The wait fd belongs to the job's wait context (one per SSL connection) and lives as long as it:
// applications such as haproxy register it once and unregister it when the connection is freed,
// which is when OpenSSL calls this cleanup. Closing it earlier would let the next eventfd reuse
// the number while the application still has it registered.
void close_wait_fd(ASYNC_WAIT_CTX*, const void*, OSSL_ASYNC_FD fd, void*) {
    ::close(fd);
}

const char kWaitKey = 0; // its address identifies keyless's fd in a job's wait context

// The job's keyless wait fd, created on first use; -1 if none can be had.
int wait_fd(ASYNC_WAIT_CTX* wait_ctx) {
    OSSL_ASYNC_FD fd = -1;
    void* custom = nullptr;
    if (ASYNC_WAIT_CTX_get_fd(wait_ctx, &kWaitKey, &fd, &custom)) return fd;
    fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return -1;
    if (!ASYNC_WAIT_CTX_set_wait_fd(wait_ctx, &kWaitKey, fd, nullptr, close_wait_fd)) {
        ::close(fd);
        return -1;
    }
    return fd;
}

} // namespace

std::shared_ptr<client::Call> remote_call(client::Client& client, const KeyUri& uri,
                                          protocol::Operation request,
                                          std::optional<protocol::Operation> fallback) {
    ASYNC_JOB* job = ASYNC_get_current_job();
    ASYNC_WAIT_CTX* wait_ctx = job ? ASYNC_get_wait_ctx(job) : nullptr;
    int fd = wait_ctx ? wait_fd(wait_ctx) : -1;
    // The call signals (then closes) its own duplicate, so it may safely complete after the
    // connection, and with it the wait context and `fd`, are gone.
    int notify = fd >= 0 ? ::dup(fd) : -1;
    // Not in a job: block, bounded, reading the reply on this thread when it can.
    if (notify < 0) return client.run(uri, std::move(request), std::move(fallback));
    std::shared_ptr<client::Call> call;
    try {
        // The call owns `notify` from here.
        call = client.start(uri, std::move(request), notify, std::move(fallback));
    } catch (...) {
        ::close(notify);
        throw;
    }
    // The application polls `fd` and resumes the job when the I/O thread signals completion.
    // Pause even if the reply is already here: an application learns of a new wait fd only when
    // a job pauses, and haproxy unregisters at close every fd of the wait context, including one
    // it was never told about (a fatal BUG_ON in haproxy 2.6). If the job cannot pause,
    // ASYNC_pause_job returns at once and wait() blocks, bounded by the request timeout.
    ASYNC_pause_job();
    call->wait();
    uint64_t drained;
    ssize_t ignored = ::read(fd, &drained, sizeof drained); // ready for this connection's next op
    (void)ignored;
    return call;
}

} // namespace keyless::provider
