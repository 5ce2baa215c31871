// keyless-tool bench: TLS 1.3 CertificateVerify signatures (or, with --digest, gokeyless digest
// signatures) kept in flight against a keyserver, through the same client code keyless.so runs.
#include "ossl.hpp"
#include "tls_scheme.hpp"
#include "tool.hpp"

#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <iostream>
#include <thread>
#include <vector>

namespace keyless::tool {

namespace {

using Clock = std::chrono::steady_clock;

// What a TLS 1.3 server signs: 64 spaces, the context string, 0, a SHA-256 transcript hash.
protocol::Operation certificate_verify_request(uint16_t scheme) {
    std::string message = std::string(64, ' ') + "TLS 1.3, server CertificateVerify";
    message.push_back('\0');
    message.append(32, 'Z');
    protocol::Operation req =
        protocol::Operation::make(protocol::Opcode::SignTLS, Bytes(message.begin(), message.end()));
    req.signature_scheme = scheme;
    return req;
}

// What a gokeyless client (or openssl req through keyless.so) sends for the same signature: the
// digest of the scheme's hash, under the gokeyless opcode for that hash and padding.
protocol::Operation digest_request(uint16_t scheme, const std::string& uri) {
    auto info = tls::scheme_info(scheme);
    if (!info || !info->digest)
        die(uri + ": --digest needs an RSA or EC key (EdDSA and ML-DSA sign whole messages)");
    return protocol::Operation::make(info->digest->opcode(info->padding),
                                     Bytes(info->digest->size, 0x5A));
}

double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto secs = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return secs(u.ru_utime) + secs(u.ru_stime);
}

struct Load {
    std::vector<std::unique_ptr<client::Client>> clients;
    KeyUri uri;
    protocol::Operation request;
    uint16_t scheme = 0; // the key's TLS 1.3 scheme: what sign-tls signs, and names the algorithm
    Clock::time_point end;
    std::atomic<uint64_t> done{0};
    std::atomic<bool> failed{false};
    std::string failure;
    std::mutex failure_mutex;
};

// Counts a finished call and its latency (from `start` to `end`); false, with the load marked
// failed, when it failed.
bool record(Load& load, const client::Call& call, Clock::time_point start, Clock::time_point end,
            std::vector<double>& latencies) {
    if (call.failure != client::Failure::None || !call.response->is(protocol::Opcode::Response)) {
        std::lock_guard lock(load.failure_mutex);
        load.failed = true;
        load.failure =
            call.failure != client::Failure::None
                ? call.message
                : "keyserver answered " +
                      std::string(protocol::to_string(protocol::error_of(*call.response)));
        return false;
    }
    latencies.push_back(std::chrono::duration<double, std::milli>(end - start).count());
    ++load.done;
    return true;
}

// One calling thread keeping `depth` requests in flight, spread over the connections from
// `first_slot` on.
void drive(Load& load, int first_slot, int depth, std::vector<double>& latencies) {
    struct InFlight {
        std::shared_ptr<client::Call> call;
        Clock::time_point start;
    };
    auto start_one = [&](int slot) {
        auto& c = *load.clients[static_cast<size_t>(slot) % load.clients.size()];
        return InFlight{c.start(load.uri, load.request), Clock::now()};
    };
    // One in flight: call and wait, as a terminator's worker does (it reads its own reply).
    if (depth == 1) {
        auto& c = *load.clients[static_cast<size_t>(first_slot) % load.clients.size()];
        while (Clock::now() < load.end && !load.failed) {
            auto start = Clock::now();
            auto call = c.run(load.uri, load.request);
            // As the caller sees it: until it has the result in hand.
            if (!record(load, *call, start, Clock::now(), latencies)) return;
        }
        return;
    }
    std::deque<InFlight> queue;
    for (int i = 0; i < depth; ++i)
        queue.push_back(start_one(first_slot + i));
    int next_slot = first_slot;
    while (!queue.empty()) {
        InFlight f = std::move(queue.front());
        queue.pop_front();
        f.call->wait();
        // Until the I/O thread completed it: this thread waits for the calls in order.
        if (!record(load, *f.call, f.start, f.call->completed_at, latencies)) return;
        if (Clock::now() < load.end && !load.failed)
            queue.push_back(start_one(next_slot++ % depth + first_slot));
    }
}

// The clients (one per --connections), the request (the key's own TLS 1.3 scheme), and a warm-up
// call on each, so that handshakes and the policy check are out of the measurement.
void prepare(const Options& o, Load& load) {
    auto first = direct_client(o, load.uri);
    Bytes spki = reply_or_die(
        *first->run(load.uri, protocol::Operation::make(protocol::Opcode::GetPublicKey)),
        o.uri + ": fetching the public key");
    const unsigned char* p = spki.data();
    ossl::Pkey pub(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
    if (!pub) die(o.uri + ": the keyserver sent an unreadable public key");
    uint16_t scheme = tls13_scheme(pub.get());
    load.request = o.digest ? digest_request(scheme, o.uri) : certificate_verify_request(scheme);
    load.scheme = scheme;
    load.clients.push_back(std::move(first));
    for (int i = 1; i < o.connections; ++i) {
        KeyUri ignored;
        load.clients.push_back(direct_client(o, ignored));
    }
    for (auto& c : load.clients)
        reply_or_die(*c->run(load.uri, load.request), o.uri + ": signing");
}

struct Measured {
    double elapsed = 0, cpu = 0;
    std::vector<double> latencies_ms; // sorted
};

// `threads` calling threads share --concurrency requests in flight for --seconds.
Measured measure(const Options& o, Load& load, int threads) {
    std::vector<std::vector<double>> latencies(static_cast<size_t>(threads));
    double cpu_before = cpu_seconds();
    auto begin = Clock::now();
    load.end = begin + std::chrono::seconds(o.seconds);
    std::vector<std::thread> workers;
    for (int t = 0, slot = 0; t < threads; ++t) {
        int depth = o.concurrency / threads + (t < o.concurrency % threads ? 1 : 0);
        workers.emplace_back(drive, std::ref(load), slot, depth,
                             std::ref(latencies[static_cast<size_t>(t)]));
        slot += depth;
    }
    // A live progress line while it runs, on a terminal only.
    bool progress = !o.json && isatty(STDERR_FILENO);
    uint64_t last = 0;
    for (int s = 1; progress && s <= o.seconds && !load.failed; ++s) {
        std::this_thread::sleep_until(begin + std::chrono::seconds(s));
        uint64_t now = load.done;
        std::fprintf(stderr, "\r%3d/%d s: %8.0f ops/s", s, o.seconds,
                     static_cast<double>(now - last));
        last = now;
    }
    for (auto& t : workers)
        t.join();
    Measured m;
    m.elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
    m.cpu = cpu_seconds() - cpu_before;
    if (progress) std::fprintf(stderr, "\r%40s\r", "");
    if (load.failed) die(o.uri + ": a signature failed during the benchmark: " + load.failure);
    for (auto& l : latencies)
        m.latencies_ms.insert(m.latencies_ms.end(), l.begin(), l.end());
    std::sort(m.latencies_ms.begin(), m.latencies_ms.end());
    return m;
}

void report(const Options& o, const Load& load, const Measured& m, int threads) {
    const auto& all = m.latencies_ms;
    auto pct = [&](double q) {
        return all[std::min(all.size() - 1,
                            static_cast<size_t>(q * static_cast<double>(all.size())))];
    };
    double ops = static_cast<double>(all.size());
    double rate = ops / m.elapsed;
    double cpu_us = m.cpu * 1e6 / ops;
    // The scheme signed, as TLS names it (rsa_pss_rsae_sha256, ecdsa_secp256r1_sha256, mldsa65).
    std::string algorithm(tls::scheme_info(load.scheme)->name);
    const char* operation = o.digest ? "sign-digest" : "sign-tls";
    if (o.json) {
        nlohmann::json out = {
            {"uri", o.uri},
            {"algorithm", algorithm},
            {"operation", operation},
            {"in_flight", o.concurrency},
            {"connections", o.connections},
            {"threads", threads},
            {"seconds", m.elapsed},
            {"operations", all.size()},
            {"ops_per_second", rate},
            {"latency_ms",
             {{"p50", pct(0.50)},
              {"p90", pct(0.90)},
              {"p99", pct(0.99)},
              {"p99_9", pct(0.999)},
              {"max", all.back()}}},
            {"client_cpu_us_per_op", cpu_us},
        };
        std::cout << out.dump() << "\n";
        return;
    }
    std::printf("%s: %s %s, %d in flight from %d client(s), %d thread(s), %.1f s: "
                "%.0f ops/s\n  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n"
                "  this client's CPU: %.1f us per operation\n",
                o.uri.c_str(), algorithm.c_str(), operation, o.concurrency, o.connections, threads,
                m.elapsed, rate, pct(0.50), pct(0.90), pct(0.99), pct(0.999), all.back(), cpu_us);
}

} // namespace

int bench(const Options& o) {
    Load load;
    prepare(o, load);
    int threads = o.threads ? std::min(o.threads, o.concurrency) : o.concurrency;
    report(o, load, measure(o, load, threads), threads);
    return 0;
}

} // namespace keyless::tool
