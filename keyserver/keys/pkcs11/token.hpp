// One PKCS#11 token: found in its module's slots, logged in once, with a pool of at most
// `max_sessions` sessions and as many worker threads of its own. Operations run on those workers,
// never on the network threads, so a slow or lost token, or an exhausted pool, holds up only
// requests for its own keys.
#pragma once

#include "keys/pkcs11/module.hpp"
#include "keys/pkcs11/settings.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace keyless::keyserver {

class Pkcs11Token {
  public:
    Pkcs11Token(std::shared_ptr<Pkcs11Module> module, CK_SLOT_ID slot, std::string label,
                std::string pin, const Pkcs11Settings& settings);
    ~Pkcs11Token(); // finishes queued work, stops the workers, closes the sessions
    Pkcs11Token(const Pkcs11Token&) = delete;
    Pkcs11Token& operator=(const Pkcs11Token&) = delete;

    // Queues `work` for a worker; false when max_queue operations already wait.
    bool submit(std::function<void()> work);

    // Runs `op(session)` on a pooled, logged-in session (waiting at most session_wait for one).
    // When the session, the login or the token is lost (the token was removed, the module
    // restarted), the session is dropped and the operation tried once more on a fresh one.
    // Throws HsmError naming the token.
    void with_session(const std::function<void(CK_SESSION_HANDLE)>& op);

    CK_FUNCTION_LIST* fn() const { return module_->fn(); }
    CK_SLOT_ID slot() const { return slot_; }
    const std::string& label() const { return label_; }
    // "token 'edge' (slot 3 of /usr/lib/softhsm/libsofthsm2.so)", for messages.
    std::string name() const;
    // The mechanisms the token offers for a key of `kind`, with what they may do
    // ("ECDSA (sign)").
    std::vector<std::string> mechanisms(tls::KeyKind kind) const;
    bool offers(CK_MECHANISM_TYPE mechanism, CK_FLAGS flags) const;
    // Every mechanism the token can sign with (for the message when a key's is missing).
    std::vector<CK_MECHANISM_TYPE> signing_mechanisms() const;
    // Whether `pin` is the PIN this token was logged in with.
    bool has_pin(const std::string& pin) const { return pin == pin_; }

  private:
    CK_SESSION_HANDLE acquire();
    void release(CK_SESSION_HANDLE session, bool broken);
    void log_in(CK_SESSION_HANDLE session);
    void work();

    std::shared_ptr<Pkcs11Module> module_;
    const CK_SLOT_ID slot_;
    const std::string label_;
    const std::string pin_; // kept to log in again after the token comes back
    const Pkcs11Settings settings_;

    std::mutex mutex_; // guards everything below
    std::condition_variable session_free_;
    std::vector<CK_SESSION_HANDLE> idle_;
    size_t open_ = 0;
    bool logged_in_ = false;
    std::condition_variable work_ready_;
    std::deque<std::function<void()>> queue_;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

} // namespace keyless::keyserver
