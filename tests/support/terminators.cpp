#include "terminators.hpp"

#include "provider_env.hpp"
#include "tls_clients.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace keyless::test {

struct BackendThread {
    std::atomic<bool> stop{false};
    std::thread thread;
};

Backend::Backend() : thread_(std::make_unique<BackendThread>()) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(listen_fd_, 512);
    thread_->thread = std::thread([this] {
        while (!thread_->stop) {
            int fd = ::accept(listen_fd_, nullptr, nullptr);
            if (fd < 0) continue;
            std::thread([fd] {
                timeval tv{10, 0};
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                std::string req;
                char buf[1024];
                ssize_t n;
                while (req.find("\r\n\r\n") == std::string::npos &&
                       (n = ::read(fd, buf, sizeof buf)) > 0)
                    req.append(buf, static_cast<size_t>(n));
                std::string body = "keyless backend ok\n";
                std::string resp =
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
                ssize_t ignored = ::write(fd, resp.data(), resp.size());
                (void)ignored;
                ::close(fd);
            }).detach();
        }
    });
}

Backend::~Backend() {
    thread_->stop = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    thread_->thread.join();
}

namespace {

std::set<pid_t> child_pids(pid_t pid) {
    std::string out;
    run_command("pgrep -P " + std::to_string(pid), &out);
    std::set<pid_t> pids;
    std::istringstream lines(out);
    for (pid_t child; lines >> child;)
        pids.insert(child);
    return pids;
}

int children_of(pid_t pid) {
    return static_cast<int>(child_pids(pid).size());
}

bool pid_alive(pid_t pid) {
    return pid > 0 && ::kill(pid, 0) == 0;
}

// Waits (bounded) until `ready` is true.
template <typename F> void eventually(F ready, const std::string& what) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!ready()) {
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("timed out: " + what);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

const char* kCiphers = "ECDHE+AESGCM:AES128-GCM-SHA256";

class Nginx : public Terminator {
  public:
    Nginx(const std::string& dir, const std::string& conf, const EdgeKeys& k,
          const std::string& extra_http)
        : dir_(dir) {
        rsa_port_ = free_port();
        ec_port_ = free_port();
        run_command("mkdir -p " + dir + "/tmp");
        auto server = [&](uint16_t port, const std::string& cert, const std::string& key) {
            return "    server {\n"
                   "        listen 127.0.0.1:" +
                   std::to_string(port) +
                   " ssl;\n"
                   "        ssl_protocols TLSv1.2 TLSv1.3;\n"
                   "        ssl_ciphers " +
                   std::string(kCiphers) +
                   ";\n"
                   "        ssl_certificate " +
                   cert +
                   ";\n"
                   "        ssl_certificate_key " +
                   key +
                   ";\n"
                   "        location / { return 200 \"keyless nginx ok\\n\"; }\n"
                   "    }\n";
        };
        write_file(dir + "/nginx.conf",
                   "daemon off;\nmaster_process on;\nworker_processes 2;\n"
                   "pid " +
                       dir + "/nginx.pid;\nerror_log " + dir +
                       "/error.log info;\n"
                       "events { worker_connections 1024; }\n"
                       "http {\n    access_log off;\n"
                       "    client_body_temp_path " +
                       dir +
                       "/tmp/body;\n"
                       "    proxy_temp_path " +
                       dir +
                       "/tmp/proxy;\n"
                       "    fastcgi_temp_path " +
                       dir +
                       "/tmp/fastcgi;\n"
                       "    uwsgi_temp_path " +
                       dir +
                       "/tmp/uwsgi;\n"
                       "    scgi_temp_path " +
                       dir +
                       "/tmp/scgi;\n"
                       "    ssl_session_cache off;\n    ssl_session_tickets off;\n" +
                       server(rsa_port_, k.rsa_cert, k.rsa_key) +
                       server(ec_port_, k.ec_cert, k.ec_key) + extra_http + "}\n");
        conf_ = conf;
        master_ = std::make_unique<Process>(
            std::vector<std::string>{"/usr/sbin/nginx", "-c", dir + "/nginx.conf", "-p", dir, "-e",
                                     dir + "/error.log"},
            std::map<std::string, std::string>{{"OPENSSL_CONF", conf}}, dir + "/stdout.log",
            dir + "/stdout.log");
        // Serving, or gone: nginx exits at start when it cannot load a key (a store: URI
        // whose keyserver is down), and the test wants its reason, not a timeout.
        eventually([&] { return !master_->running() || (accepts(rsa_port_) && accepts(ec_port_)); },
                   "nginx listening");
        if (!master_->running()) throw std::runtime_error("nginx did not start:\n" + log());
        eventually([&] { return children_of(master_->pid()) == 2; }, "nginx workers");
    }
    std::string name() const override { return "nginx"; }
    std::string body() const override { return "keyless nginx ok"; }
    // Master and both workers running, and no worker (current or replaced) ever crashed.
    bool alive() override {
        return master_->running() && children_of(master_->pid()) >= 2 &&
               log().find("exited on signal") == std::string::npos;
    }
    void reload() override {
        const std::set<pid_t> old_workers = child_pids(master_->pid());
        std::string out;
        if (run_command("OPENSSL_CONF=" + conf_ + " /usr/sbin/nginx -c " + dir_ +
                            "/nginx.conf -p " + dir_ + " -e " + dir_ + "/error.log -s reload",
                        &out) != 0)
            throw std::runtime_error("nginx -s reload failed: " + out);
        // Done once the master has exactly two workers and neither is an old one: until then a
        // connection may reach an old worker that is closing its connections to exit.
        eventually(
            [&] {
                auto now = child_pids(master_->pid());
                return now.size() == 2 && std::none_of(now.begin(), now.end(), [&](pid_t p) {
                           return old_workers.count(p) != 0;
                       });
            },
            "nginx's new workers, and its old ones gone, after reload");
    }
    std::string log() const override {
        return read_file(dir_ + "/error.log") + read_file(dir_ + "/stdout.log");
    }

  private:
    std::string dir_, conf_;
    std::unique_ptr<Process> master_;
};

class Haproxy : public Terminator {
  public:
    Haproxy(const std::string& dir, const std::string& conf, const EdgeKeys& k, int threads,
            bool async)
        : dir_(dir) {
        rsa_port_ = free_port();
        ec_port_ = free_port();
        // RSA: certificate then stub in one bundle; EC: certificate, stub beside it as ".key".
        run_command("mkdir -p " + dir + "/ec && cat " + k.rsa_cert + " " + k.rsa_key + " > " + dir +
                    "/rsa-bundle.pem && cp " + k.ec_cert + " " + dir + "/ec/ec.pem && cp " +
                    k.ec_key + " " + dir + "/ec/ec.pem.key");
        auto frontend = [&](const char* name, uint16_t port, const std::string& crt) {
            return std::string("frontend ") + name +
                   "\n    bind 127.0.0.1:" + std::to_string(port) + " ssl crt " + crt +
                   " ssl-min-ver TLSv1.2 ciphers " + kCiphers +
                   "\n    http-request return status 200 content-type text/plain string \"keyless "
                   "haproxy ok\"\n";
        };
        write_file(dir + "/haproxy.cfg",
                   "global\n    nbthread " + std::to_string(threads) + "\n" +
                       (async ? "    ssl-mode-async\n" : "") +
                       "    tune.ssl.cachesize 0\n    maxconn 2000\n"
                       "defaults\n    mode http\n    timeout connect 10s\n    timeout client 60s\n"
                       "    timeout server 60s\n" +
                       frontend("rsa", rsa_port_, dir + "/rsa-bundle.pem") +
                       frontend("ec", ec_port_, dir + "/ec/ec.pem"));
        master_ = std::make_unique<Process>(
            std::vector<std::string>{"/usr/sbin/haproxy", "-W", "-f", dir + "/haproxy.cfg"},
            std::map<std::string, std::string>{{"OPENSSL_CONF", conf}}, dir + "/haproxy.log",
            dir + "/haproxy.log");
        wait_for_port(rsa_port_, std::chrono::seconds(20));
        wait_for_port(ec_port_, std::chrono::seconds(20));
    }
    std::string name() const override { return "haproxy"; }
    std::string body() const override { return "keyless haproxy ok"; }
    // Alive, and no worker (current or former, after a reload) died of a crash.
    bool alive() override {
        std::string l = log();
        return master_->running() && children_of(master_->pid()) >= 1 &&
               l.find("Segmentation fault") == std::string::npos &&
               l.find("(Aborted)") == std::string::npos;
    }
    void reload() override {
        size_t before = count_reloads();
        ::kill(master_->pid(), SIGUSR2);
        eventually([&] { return count_reloads() > before; }, "haproxy reload");
    }
    std::string log() const override { return read_file(dir_ + "/haproxy.log"); }

  private:
    size_t count_reloads() const {
        std::string l = log();
        size_t n = 0;
        for (size_t at = l.find("Loading success."); at != std::string::npos;
             at = l.find("Loading success.", at + 1))
            ++n;
        return n;
    }
    std::string dir_;
    std::unique_ptr<Process> master_;
};

class Stunnel : public Terminator {
  public:
    Stunnel(const std::string& dir, const std::string& conf, const EdgeKeys& k, uint16_t backend)
        : dir_(dir) {
        rsa_port_ = free_port();
        ec_port_ = free_port();
        auto service = [&](const char* name, uint16_t port, const std::string& cert,
                           const std::string& key) {
            return std::string("[") + name + "]\naccept = 127.0.0.1:" + std::to_string(port) +
                   "\nconnect = 127.0.0.1:" + std::to_string(backend) + "\ncert = " + cert +
                   "\nkey = " + key + "\nsslVersionMin = TLSv1.2\nciphers = " + kCiphers + "\n";
        };
        write_file(dir + "/stunnel.conf", "foreground = no\npid = " + dir +
                                              "/stunnel.pid\noutput = " + dir +
                                              "/stunnel.log\ndebug = info\n" +
                                              service("rsa", rsa_port_, k.rsa_cert, k.rsa_key) +
                                              service("ec", ec_port_, k.ec_cert, k.ec_key));
        // stunnel forks into the background: the launcher exits, the daemon's pid is in the file.
        Process launcher({"/usr/bin/stunnel4", dir + "/stunnel.conf"}, {{"OPENSSL_CONF", conf}},
                         dir + "/launcher.log", dir + "/launcher.log");
        if (launcher.wait(std::chrono::seconds(20)) != 0)
            throw std::runtime_error(
                "stunnel failed to start: " + read_file(dir + "/launcher.log") + log());
        eventually([&] { return !read_file(dir + "/stunnel.pid").empty(); }, "stunnel pid file");
        daemon_ = std::stoi(read_file(dir + "/stunnel.pid"));
        wait_for_port(rsa_port_, std::chrono::seconds(20));
        wait_for_port(ec_port_, std::chrono::seconds(20));
    }
    ~Stunnel() override {
        if (!pid_alive(daemon_)) return;
        ::kill(daemon_, SIGTERM);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (pid_alive(daemon_) && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (pid_alive(daemon_)) ::kill(daemon_, SIGKILL);
    }
    std::string name() const override { return "stunnel"; }
    std::string body() const override { return "keyless backend ok"; }
    bool alive() override { return pid_alive(daemon_); }
    // SIGHUP re-reads the configuration (keys included); done when stunnel says so again.
    void reload() override {
        auto successes = [&] {
            std::string l = log();
            size_t n = 0;
            for (size_t at = l.find("Configuration successful"); at != std::string::npos;
                 at = l.find("Configuration successful", at + 1))
                ++n;
            return n;
        };
        size_t before = successes();
        ::kill(daemon_, SIGHUP);
        eventually([&] { return successes() > before; }, "stunnel reload");
        // It re-creates its services after that line: ready once a handshake works again.
        eventually([&] { return https_get(rsa_port_).find(body()) != std::string::npos; },
                   "stunnel serving after reload");
    }
    std::string log() const override { return read_file(dir_ + "/stunnel.log"); }

  private:
    std::string dir_;
    pid_t daemon_ = -1;
};

} // namespace

std::unique_ptr<Terminator> start_nginx(const std::string& dir, const std::string& conf,
                                        const EdgeKeys& keys, const std::string& extra_http) {
    return std::make_unique<Nginx>(dir, conf, keys, extra_http);
}
std::unique_ptr<Terminator> start_haproxy(const std::string& dir, const std::string& conf,
                                          const EdgeKeys& keys, int threads, bool async) {
    return std::make_unique<Haproxy>(dir, conf, keys, threads, async);
}
std::unique_ptr<Terminator> start_stunnel(const std::string& dir, const std::string& conf,
                                          const EdgeKeys& keys, uint16_t backend_port) {
    return std::make_unique<Stunnel>(dir, conf, keys, backend_port);
}

} // namespace keyless::test
