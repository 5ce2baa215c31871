// The BIO under the client's TLS (client/socket_bio.hpp) on a local socket pair: writes to a
// closed peer fail without raising SIGPIPE, reads tell "try again" from the peer's close.
#include "client/socket_bio.hpp"

#include "catch.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>

using namespace keyless;

namespace {

struct SocketPair {
    int ours = -1, peer = -1;
    SocketPair() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
        ours = fds[0];
        peer = fds[1];
    }
    ~SocketPair() {
        ::close(ours);
        if (peer >= 0) ::close(peer);
    }
    void close_peer() {
        ::close(peer);
        peer = -1;
    }
};

// SIGPIPE blocked with its default action for the scope, so that raising it leaves it pending
// (the test binary otherwise ignores it); whatever is pending is taken on the way out.
struct PipeSignalWatch {
    sigset_t pipe{}, old_mask{};
    struct sigaction old_action {};
    PipeSignalWatch() {
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, &old_mask);
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGPIPE, &dfl, &old_action);
        take();
    }
    ~PipeSignalWatch() {
        take();
        sigaction(SIGPIPE, &old_action, nullptr);
        pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    }
    bool pending() const {
        sigset_t now;
        sigpending(&now);
        return sigismember(&now, SIGPIPE) == 1;
    }
    bool take() const {
        timespec zero{};
        return sigtimedwait(&pipe, nullptr, &zero) == SIGPIPE;
    }
};

} // namespace

TEST_CASE("socket BIO: a write to a connection the peer closed fails without raising SIGPIPE") {
    SocketPair sockets;
    auto bio = client::socket_bio(sockets.ours);
    REQUIRE(bio);
    sockets.close_peer();
    PipeSignalWatch watch;
    // The check can see the signal: a plain write to the same socket raises it.
    const char byte = 'x';
    REQUIRE(::write(sockets.ours, &byte, 1) == -1);
    REQUIRE(watch.take());

    size_t written = 0;
    CHECK(BIO_write_ex(bio.get(), "request", 7, &written) == 0);
    CHECK(errno == EPIPE);
    CHECK_FALSE(BIO_should_retry(bio.get())); // a lost connection, not "try again"
    CHECK_FALSE(watch.pending());
}

TEST_CASE("socket BIO: reads say 'try again' on an empty socket and end at the peer's close") {
    SocketPair sockets;
    auto bio = client::socket_bio(sockets.ours);
    REQUIRE(bio);
    CHECK(BIO_get_fd(bio.get(), nullptr) == sockets.ours);
    std::array<char, 16> buf{};
    size_t got = 0;

    CHECK(BIO_read_ex(bio.get(), buf.data(), buf.size(), &got) == 0);
    CHECK(BIO_should_retry(bio.get()));
    CHECK(BIO_should_read(bio.get()));
    CHECK(BIO_eof(bio.get()) == 0);

    REQUIRE(::write(sockets.peer, "reply", 5) == 5);
    REQUIRE(BIO_read_ex(bio.get(), buf.data(), buf.size(), &got) == 1);
    CHECK(std::string(buf.data(), got) == "reply");

    size_t written = 0;
    REQUIRE(BIO_write_ex(bio.get(), "request", 7, &written) == 1);
    CHECK(written == 7);
    CHECK(BIO_flush(bio.get()) == 1);
    REQUIRE(::read(sockets.peer, buf.data(), buf.size()) ==
            7); // (unread, the close would be a reset)

    sockets.close_peer();
    CHECK(BIO_read_ex(bio.get(), buf.data(), buf.size(), &got) == 0);
    CHECK_FALSE(BIO_should_retry(bio.get()));
    CHECK(BIO_eof(bio.get()) == 1);
}
