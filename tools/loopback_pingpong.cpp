// loopback-pingpong: this machine's own floor for one keyless round trip, for scripts/bench.sh to
// print keyless's figures against. A client and a server process exchange SIZE-byte messages over
// loopback TCP, one in flight (write it, read the echo), for SECONDS: no TLS, no framing, no
// signature, only the two syscalls each way and the wake-ups between the processes that any
// request/response protocol pays. Each process runs on the CPU given (the same one for both:
// no cross-core wake-up).
// Usage: loopback-pingpong SECONDS SIZE CLIENT_CPU SERVER_CPU; prints one JSON line: round trips,
// client and server CPU microseconds per round trip, latency p50 and p99 in microseconds.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& why) {
    std::perror(("loopback-pingpong: " + why).c_str());
    std::exit(1);
}

void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        die("cannot pin to CPU " + std::to_string(cpu));
}

void no_delay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Moves exactly `size` bytes; false when the peer closed.
bool transfer(int fd, char* buf, size_t size, bool reading) {
    for (size_t done = 0; done < size;) {
        ssize_t n =
            reading ? ::read(fd, buf + done, size - done) : ::write(fd, buf + done, size - done);
        if (n <= 0) return false;
        done += static_cast<size_t>(n);
    }
    return true;
}

double cpu_us(const rusage& u) {
    auto us = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_usec);
    };
    return us(u.ru_utime) + us(u.ru_stime);
}

[[noreturn]] void serve(int listener, size_t size, int cpu) {
    pin(cpu);
    int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) die("accept");
    no_delay(fd);
    std::vector<char> buf(size);
    while (transfer(fd, buf.data(), size, true) && transfer(fd, buf.data(), size, false)) {
    }
    std::_Exit(0);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: loopback-pingpong SECONDS SIZE CLIENT_CPU SERVER_CPU\n");
        return 2;
    }
    double seconds = std::atof(argv[1]);
    size_t size = static_cast<size_t>(std::atol(argv[2]));
    int client_cpu = std::atoi(argv[3]), server_cpu = std::atoi(argv[4]);
    if (seconds <= 0 || size == 0) {
        std::fprintf(stderr, "loopback-pingpong: SECONDS and SIZE must be positive\n");
        return 2;
    }
    int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener, 1) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        die("cannot listen on 127.0.0.1");
    pid_t server = ::fork();
    if (server < 0) die("fork");
    if (server == 0) serve(listener, size, server_cpu);
    ::close(listener);
    pin(client_cpu);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        die("connect");
    no_delay(fd);
    std::vector<char> buf(size, 'k');
    auto round_trip = [&] {
        if (!transfer(fd, buf.data(), size, false) || !transfer(fd, buf.data(), size, true))
            die("the server closed");
    };
    size_t warm = 1000;
    for (size_t i = 0; i < warm; ++i)
        round_trip();
    std::vector<double> latencies;
    latencies.reserve(1 << 20);
    rusage before{}, after{};
    getrusage(RUSAGE_SELF, &before);
    auto end = Clock::now() + std::chrono::duration<double>(seconds);
    for (auto now = Clock::now(); now < end;) {
        round_trip();
        auto then = Clock::now();
        latencies.push_back(std::chrono::duration<double, std::micro>(then - now).count());
        now = then;
    }
    getrusage(RUSAGE_SELF, &after);
    ::close(fd);
    int status = 0;
    rusage server_usage{};
    if (::wait4(server, &status, 0, &server_usage) != server) die("wait4");
    size_t n = latencies.size();
    std::sort(latencies.begin(), latencies.end());
    std::printf(
        "{\"round_trips\":%zu,\"client_cpu_us\":%.2f,\"server_cpu_us\":%.2f,\"p50_us\":%.1f,"
        "\"p99_us\":%.1f}\n",
        n, (cpu_us(after) - cpu_us(before)) / static_cast<double>(n),
        cpu_us(server_usage) / static_cast<double>(n + warm), latencies[n / 2],
        latencies[std::min(n - 1, n * 99 / 100)]);
    return 0;
}
