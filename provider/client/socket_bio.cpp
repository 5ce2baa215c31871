#include "socket_bio.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <memory>

namespace keyless::client {

namespace {

struct SocketState {
    int fd;
    bool eof = false; // the keyserver closed its side: TLS tells a truncation from a retry by it
};

SocketState& state(BIO* b) {
    return *static_cast<SocketState*>(BIO_get_data(b));
}

bool would_block(int err) {
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

int write_ex(BIO* b, const char* data, size_t len, size_t* written) {
    BIO_clear_retry_flags(b);
    ssize_t n = ::send(state(b).fd, data, len, MSG_NOSIGNAL);
    if (n >= 0) {
        *written = static_cast<size_t>(n);
        return 1;
    }
    if (would_block(errno)) BIO_set_retry_write(b);
    return 0;
}

int read_ex(BIO* b, char* data, size_t len, size_t* got) {
    BIO_clear_retry_flags(b);
    ssize_t n = ::recv(state(b).fd, data, len, 0);
    if (n > 0) {
        *got = static_cast<size_t>(n);
        return 1;
    }
    if (n == 0)
        state(b).eof = true;
    else if (would_block(errno))
        BIO_set_retry_read(b);
    return 0;
}

long ctrl(BIO* b, int cmd, long, void* ptr) {
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; // nothing is buffered here
    case BIO_CTRL_EOF:
        return state(b).eof ? 1 : 0;
    case BIO_C_GET_FD:
        if (ptr) *static_cast<int*>(ptr) = state(b).fd;
        return state(b).fd;
    default:
        return 0;
    }
}

int destroy(BIO* b) {
    std::unique_ptr<SocketState> owned(static_cast<SocketState*>(BIO_get_data(b)));
    BIO_set_data(b, nullptr);
    return 1;
}

// Made once and never freed: every BIO made from it, in every client of the process, must be
// able to outlive any one of them (the last are freed inside OPENSSL_cleanup at exit).
const BIO_METHOD* method() {
    static const BIO_METHOD* const made = [] {
        BIO_METHOD* m =
            BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                         "keyless keyserver socket");
        if (!m || BIO_meth_set_write_ex(m, write_ex) != 1 ||
            BIO_meth_set_read_ex(m, read_ex) != 1 || BIO_meth_set_ctrl(m, ctrl) != 1 ||
            BIO_meth_set_destroy(m, destroy) != 1) {
            BIO_meth_free(m);
            return static_cast<BIO_METHOD*>(nullptr);
        }
        return m;
    }();
    return made;
}

} // namespace

ossl::Bio socket_bio(int fd) {
    const BIO_METHOD* m = method();
    if (!m) return nullptr;
    ossl::Bio bio(BIO_new(m));
    if (!bio) return nullptr;
    BIO_set_data(bio.get(), std::make_unique<SocketState>(SocketState{fd}).release());
    BIO_set_init(bio.get(), 1);
    return bio;
}

} // namespace keyless::client
