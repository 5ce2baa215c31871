// A fleet of keyservers behind one nginx: three real keyservers on 127.0.0.1, .2 and .3 plus a
// fourth endpoint that accepts TCP and never answers, named together in the stubs' URI. Under a
// steady handshake load, one keyserver is killed (-9) and restarted: nearly every handshake
// succeeds, the survivors take its load, it takes traffic again once back, and the silent
// endpoint costs at most one slow handshake per nginx worker in the whole run.
#include "provider_env.hpp"
#include "terminators.hpp"
#include "tls_clients.hpp"

#include "catch.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <atomic>
#include <mutex>
#include <thread>

using namespace keyless::test;
using Clock = std::chrono::steady_clock;

namespace {

const char* kConfig = R"({"keys": {"rsa2048": {"allow": ["sign-tls", "rsa-decrypt-tls"]},
                                   "p256": {"allow": ["sign-tls"]}}})";

// Listens on 127.0.0.4 and never accepts: the kernel completes TCP handshakes into the backlog,
// and a TLS ClientHello is never answered, as by a keyserver that hangs.
class BlackHole {
  public:
    BlackHole() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(0x7f000004);
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::listen(fd_, 256) != 0)
            throw std::runtime_error("cannot listen on 127.0.0.4");
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
    }
    ~BlackHole() { ::close(fd_); }
    std::string address() const { return "127.0.0.4:" + std::to_string(port_); }

  private:
    int fd_ = -1;
    uint16_t port_ = 0;
};

// Waits until the clients have made `n` more handshakes (ok or not); fails after 60 s, so a
// stalled run ends.
void wait_for_handshakes(const std::atomic<int>& ok, const std::atomic<int>& failed, int n) {
    int until = ok + failed + n;
    for (auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(60);
         ok + failed < until && std::chrono::steady_clock::now() < limit;)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(ok + failed >= until);
}

size_t signatures(KeyserverFixture& ks) {
    return count_of(ks.access_log(), "\"op\":\"sign-tls:");
}

// Keyservers on 127.0.0.1, .2 and .3, serving the same keys.
std::vector<std::unique_ptr<KeyserverFixture>> three_keyservers() {
    std::vector<std::unique_ptr<KeyserverFixture>> fleet;
    for (int i = 1; i <= 3; ++i)
        fleet.push_back(std::make_unique<KeyserverFixture>(kConfig, std::vector<std::string>{},
                                                           "127.0.0." + std::to_string(i) + ":0"));
    return fleet;
}

// nginx (2 workers) with stubs for `uri_prefix` + "rsa2048" and "p256", made offline.
std::unique_ptr<Terminator> nginx_with_stubs(const TempDir& dir, const std::string& conf,
                                             const std::string& uri_prefix) {
    std::string out;
    for (const char* key : {"rsa2048", "p256"})
        if (run_with_conf(conf,
                          keyless_tool() + " stub " + uri_prefix + key + " --from-cert " +
                              pki(std::string("certs/") + key + ".crt") + " -o " +
                              (dir / (std::string(key) + ".stub.pem")),
                          &out) != 0)
            throw std::runtime_error(out);
    run_command("mkdir -p " + (dir / "nginx"));
    return start_nginx(dir / "nginx", conf,
                       {pki("certs/rsa2048.crt"), dir / "rsa2048.stub.pem", pki("certs/p256.crt"),
                        dir / "p256.stub.pem"});
}

} // namespace

TEST_CASE("a fleet of three keyservers behind nginx: one killed -9 and restarted under load",
          "[nginx]") {
    auto fleet = three_keyservers();
    BlackHole silent;
    std::string servers;
    for (auto& ks : fleet)
        servers += (servers.empty() ? "" : ",") + ks->address();
    servers += "," + silent.address();

    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    auto nginx = nginx_with_stubs(dir, conf, "keyless:" + servers + "/");

    // Steady load: four clients making full TLS 1.3 handshakes (and a GET) back to back.
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0};
    std::mutex slow_mutex;
    std::vector<double> slow_started; // seconds into the run, of handshakes slower than 2 s
    auto begin = Clock::now();
    std::vector<std::thread> clients;
    for (int i = 0; i < 4; ++i)
        clients.emplace_back([&, i] {
            uint16_t port = i % 2 ? nginx->rsa_port() : nginx->ec_port();
            while (!stop) {
                auto start = Clock::now();
                bool good = https_get(port).find(nginx->body()) != std::string::npos;
                ++(good ? ok : failed);
                if (Clock::now() - start > std::chrono::seconds(2)) {
                    std::lock_guard lock(slow_mutex);
                    slow_started.push_back(std::chrono::duration<double>(start - begin).count());
                }
            }
        });
    // Each phase lasts a number of handshakes, not a time.
    auto run_handshakes = [&](int n) { wait_for_handshakes(ok, failed, n); };

    run_handshakes(400);
    size_t victim_before = signatures(*fleet[1]);
    size_t survivors_before = signatures(*fleet[0]) + signatures(*fleet[2]);
    CHECK(victim_before > 0); // the load was spread over the fleet
    fleet[1]->process().kill(SIGKILL);
    fleet[1]->process().wait(std::chrono::seconds(5));
    run_handshakes(400);
    size_t survivors_after = signatures(*fleet[0]) + signatures(*fleet[2]);
    fleet[1]->restart();
    size_t back_at = signatures(*fleet[1]);
    // Until the restarted one has signed again (its probe succeeded), and 400 more after that.
    for (auto limit = Clock::now() + std::chrono::seconds(30);
         signatures(*fleet[1]) == back_at && Clock::now() < limit;)
        run_handshakes(20);
    run_handshakes(400);
    stop = true;
    for (auto& t : clients)
        t.join();

    int total = ok + failed;
    INFO(ok << " handshakes ok, " << failed << " failed, " << slow_started.size()
            << " slower than 2 s");
    CHECK(total > 500);
    CHECK(failed * 1000 <= total);             // at least 99.9 % succeed
    CHECK(survivors_after > survivors_before); // the survivors took the load
    CHECK(signatures(*fleet[1]) > back_at);    // the restarted one takes traffic again
    // The silent endpoint costs each nginx worker (its own client) one wait of connect_timeout_ms,
    // the first time the worker picks it; the handshakes queued behind that worker meanwhile wait
    // with it (at most one per client). After that it is down and only probed in the background.
    // Were it not, every fourth handshake would wait: hundreds in this run.
    CHECK(slow_started.size() <= 2 * clients.size());
    CHECK(nginx->alive());
}

TEST_CASE(
    "keyless:/KEYID stubs use the servers of openssl.cnf: moving the fleet needs no new stub") {
    KeyserverFixture a(kConfig, {}, "127.0.0.1:0");
    KeyserverFixture b(kConfig, {}, "127.0.0.2:0");
    TempDir dir;
    std::string out;
    std::string conf_a =
        write_openssl_conf(dir / "a.cnf", "edge-1", "ca.crt", "servers = " + a.address());
    REQUIRE(run_with_conf(conf_a,
                          keyless_tool() + " stub keyless:/p256 --from-cert " +
                              pki("certs/p256.crt") + " -o " + (dir / "p256.stub.pem"),
                          &out) == 0);
    CHECK_THAT(read_file(dir / "p256.stub.pem"), match::contains("BEGIN KEYLESS KEY"));
    // One s_server process per configuration, as a terminator reload would give.
    auto handshake_with = [&](const std::string& conf) {
        uint16_t port = free_port();
        Process server({"/usr/bin/openssl", "s_server", "-accept",
                        "127.0.0.1:" + std::to_string(port), "-cert", pki("certs/p256.crt"), "-key",
                        dir / "p256.stub.pem", "-www"},
                       {{"OPENSSL_CONF", conf}}, dir / "s_server.log", dir / "s_server.log");
        wait_for_port(port, std::chrono::seconds(10));
        return handshake_ok(s_client(port, "-tls1_3"));
    };
    CHECK(handshake_with(conf_a));
    CHECK(signatures(a) == 1);
    // The fleet moved: one line of openssl.cnf, the same stub.
    std::string conf_b =
        write_openssl_conf(dir / "b.cnf", "edge-1", "ca.crt", "servers = " + b.address());
    CHECK(handshake_with(conf_b));
    CHECK(signatures(b) == 1);
    CHECK(signatures(a) == 1);
    // No servers configured: the handshake fails and the terminator's log says why.
    std::string conf_none = write_openssl_conf(dir / "none.cnf");
    CHECK_FALSE(handshake_with(conf_none));
    CHECK_THAT(read_file(dir / "s_server.log"),
               match::contains("keyless:/p256 names no keyserver, and the provider's openssl.cnf "
                               "section sets no servers"));
}

TEST_CASE(
    "three keyservers behind haproxy (TCP mode, health checks): drain and stop one, lose none",
    "[haproxy]") {
    auto fleet = three_keyservers();
    TempDir dir;
    // The balancer only moves bytes; the keyservers' /healthz (503 while draining) steers it.
    uint16_t front = free_port();
    std::string cfg = "global\n    maxconn 1000\ndefaults\n    mode tcp\n    timeout connect 2s\n"
                      "    timeout client 1h\n    timeout server 1h\n"
                      "frontend keyless\n    bind 127.0.0.1:" +
                      std::to_string(front) +
                      "\n    default_backend keyservers\n"
                      "backend keyservers\n    balance leastconn\n    option httpchk GET /healthz\n"
                      "    http-check expect status 200\n"
                      "    default-server inter 100ms fall 1 rise 2\n";
    for (size_t i = 0; i < fleet.size(); ++i)
        cfg += "    server ks" + std::to_string(i + 1) + " " + fleet[i]->address() +
               " check port " + std::to_string(fleet[i]->admin_port()) + " addr 127.0.0.1\n";
    write_file(dir / "haproxy.cfg", cfg);
    Process haproxy({"/usr/sbin/haproxy", "-db", "-f", dir / "haproxy.cfg"}, {},
                    dir / "haproxy.log", dir / "haproxy.log");
    wait_for_port(front, std::chrono::seconds(10));

    std::string conf = write_openssl_conf(dir / "openssl.cnf", "edge-1", "ca.crt",
                                          "servers = 127.0.0.1:" + std::to_string(front));
    auto nginx = nginx_with_stubs(dir, conf, "keyless:/");

    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < 4; ++i)
        clients.emplace_back([&, i] {
            uint16_t port = i % 2 ? nginx->rsa_port() : nginx->ec_port();
            while (!stop)
                ++(https_get(port).find(nginx->body()) != std::string::npos ? ok : failed);
        });
    auto run_handshakes = [&](int n) { wait_for_handshakes(ok, failed, n); };
    run_handshakes(200);
    // The operator's procedure (docs/deploy.md): drain, let the balancer see /healthz 503, stop.
    std::string drained = admin(*fleet[1], "POST", "/drain");
    for (auto limit = Clock::now() + std::chrono::seconds(10);
         read_file(dir / "haproxy.log").find("keyservers/ks2 is DOWN") == std::string::npos &&
         Clock::now() < limit;)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK_THAT(read_file(dir / "haproxy.log"), match::contains("keyservers/ks2 is DOWN"));
    fleet[1]->process().kill(SIGTERM);
    CHECK(fleet[1]->process().wait(std::chrono::seconds(15)) == 0); // answered what it read
    size_t survivors_at_stop = signatures(*fleet[0]) + signatures(*fleet[2]);
    run_handshakes(300);
    stop = true;
    for (auto& t : clients)
        t.join();

    INFO(ok << " handshakes ok, " << failed << " failed; haproxy:\n"
            << read_file(dir / "haproxy.log"));
    CHECK(ok > 300);
    CHECK(failed == 0);
    CHECK(signatures(*fleet[0]) + signatures(*fleet[2]) > survivors_at_stop); // they carry on
    CHECK(nginx->alive());
}
