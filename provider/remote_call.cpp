#include "remote_call.hpp"

#include <openssl/async.h>

#include <sys/eventfd.h>
#include <unistd.h>

namespace keyless::provider {

namespace {

// The wait context closes our fd if the job is abandoned (e.g. the connection is freed while the
// handshake is paused); the call keeps its own duplicate, so completing it later is still safe.
void close_wait_fd(ASYNC_WAIT_CTX*, const void*, OSSL_ASYNC_FD fd, void*) { ::close(fd); }

const char kWaitKey = 0; // its address identifies keyless's fd in a job's wait context

} // namespace

std::shared_ptr<client::Call> remote_call(const KeyObject& key, protocol::Operation request) {
    ASYNC_JOB* job = ASYNC_get_current_job();
    ASYNC_WAIT_CTX* wait_ctx = job ? ASYNC_get_wait_ctx(job) : nullptr;
    int fd = wait_ctx ? ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) : -1;
    int notify = fd >= 0 ? ::dup(fd) : -1;
    if (fd < 0 || notify < 0 ||
        !ASYNC_WAIT_CTX_set_wait_fd(wait_ctx, &kWaitKey, fd, nullptr, close_wait_fd)) {
        if (notify >= 0) ::close(notify);
        if (fd >= 0) ::close(fd);
        auto call = key.start(std::move(request), -1); // not in a job: block, bounded
        call->wait();
        return call;
    }
    std::shared_ptr<client::Call> call;
    try {
        call = key.start(std::move(request), notify); // the call owns `notify` from here
    } catch (...) {
        ASYNC_WAIT_CTX_clear_fd(wait_ctx, &kWaitKey);
        ::close(fd);
        throw;
    }
    // The application polls `fd` and resumes the job when the I/O thread signals completion.
    // If the job cannot pause, ASYNC_pause_job returns at once and wait() blocks (bounded by the
    // request timeout); after a resume the call is normally complete already.
    if (!call->done()) ASYNC_pause_job();
    call->wait();
    ASYNC_WAIT_CTX_clear_fd(wait_ctx, &kWaitKey);
    ::close(fd);
    return call;
}

} // namespace keyless::provider
