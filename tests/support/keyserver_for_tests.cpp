// keyserver-test: the real keyserver program with test-only behaviours that production code
// does not carry, chosen by flags this wrapper removes before the keyserver sees the rest:
//   --test-reply-delay-ms N    hold every reply N ms without holding a thread (a distant server)
//   --test-slow-key NAME       hold only the replies for key NAME (a key in a busy token)
//   --test-emulate-gokeyless   answer as a stock gokeyless server: keyless extensions get
//                              BadOpcode, keys are found by SKI only (the KeyName tag is ignored)
#include "app.hpp"

#include <utility> // Boost 1.74's asio/awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>

#include <iostream>
#include <thread>

using namespace keyless;
using namespace keyless::keyserver;
namespace asio = boost::asio;

namespace {

bool is_extension(const protocol::Operation& request) {
    return request.is(protocol::Opcode::GetPublicKey) || request.is(protocol::Opcode::SignTLS) ||
           request.is(protocol::Opcode::RSADecryptTLS);
}

class TestHandler : public RequestHandler {
  public:
    TestHandler(std::shared_ptr<const Dispatcher> inner, bool emulate_gokeyless,
                std::chrono::milliseconds delay, std::string slow_key, asio::io_context& timers)
        : inner_(std::move(inner)), emulate_(emulate_gokeyless), delay_(delay),
          slow_key_(std::move(slow_key)), timers_(timers) {}

    Resolution resolve(const ClientIdentity& client,
                       const protocol::Operation& request) const override {
        return inner_->resolve(client, request);
    }

    void answer(const ClientIdentity& client, const protocol::Operation& request,
                const Resolution& resolved, std::function<void(Outcome)> done) const override {
        Outcome outcome;
        if (emulate_ && is_extension(request)) {
            outcome = error_outcome(protocol::ErrorCode::BadOpcode, "gokeyless emulation");
        } else if (emulate_) {
            protocol::Operation stock = request;
            stock.key_name.clear();
            outcome = inner_->handle(client, stock);
        } else {
            outcome = inner_->handle(client, request, resolved);
        }
        bool held = delay_.count() != 0 && (slow_key_.empty() || request.key_name == slow_key_);
        if (!held) return done(std::move(outcome));
        auto timer = std::make_shared<asio::steady_timer>(timers_, delay_);
        timer->async_wait([timer, done = std::move(done),
                           outcome = std::move(outcome)](const boost::system::error_code&) mutable {
            done(std::move(outcome));
        });
    }

    bool runs_inline(const protocol::Operation& request,
                     const Resolution& resolved) const override {
        return inner_->runs_inline(request, resolved);
    }

  private:
    std::shared_ptr<const Dispatcher> inner_;
    bool emulate_;
    std::chrono::milliseconds delay_;
    std::string slow_key_; // empty: every reply is held
    asio::io_context& timers_;
};

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args;
    bool emulate = false;
    std::chrono::milliseconds delay{0};
    std::string slow_key;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--test-emulate-gokeyless") {
            emulate = true;
        } else if (a == "--test-slow-key" && i + 1 < argc) {
            slow_key = argv[++i];
        } else if (a == "--test-reply-delay-ms" && i + 1 < argc) {
            delay = std::chrono::milliseconds(std::stoul(argv[++i]));
        } else {
            args.push_back(a);
        }
    }
    // Delayed replies wait on this thread's timers, so no worker is held while they wait.
    asio::io_context timers;
    auto work = asio::make_work_guard(timers);
    std::thread timer_thread([&timers] { timers.run(); });
    AppHooks hooks;
    hooks.wrap = [&](std::shared_ptr<const Dispatcher> dispatcher) {
        return std::make_shared<const TestHandler>(std::move(dispatcher), emulate, delay, slow_key,
                                                   timers);
    };
    int status = run_keyserver(args, hooks);
    work.reset();
    timers.stop();
    timer_thread.join();
    return status;
}
