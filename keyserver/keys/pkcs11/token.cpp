#include "keys/pkcs11/token.hpp"

#include "keys/pkcs11/mechanisms.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace keyless::keyserver {

namespace {

// Return values after which a session is useless, but a fresh one may work.
bool session_lost(CK_RV rv) {
    switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_ERROR:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
        return true;
    default:
        return false;
    }
}

} // namespace

Pkcs11Token::Pkcs11Token(std::shared_ptr<Pkcs11Module> module, CK_SLOT_ID slot, std::string label,
                         std::string pin, const Pkcs11Settings& settings)
    : module_(std::move(module)), slot_(slot), label_(std::move(label)), pin_(std::move(pin)),
      settings_(settings) {
    // Log in now: a wrong PIN is a load error, not a failure at the first handshake.
    CK_SESSION_HANDLE session = acquire();
    release(session, false);
    for (size_t i = 0; i < std::max<size_t>(1, settings_.max_sessions); ++i)
        workers_.emplace_back([this] { work(); });
}

Pkcs11Token::~Pkcs11Token() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    work_ready_.notify_all();
    for (auto& t : workers_)
        t.join();
    for (CK_SESSION_HANDLE s : idle_)
        fn()->C_CloseSession(s);
}

std::string Pkcs11Token::name() const {
    return "token '" + label_ + "' (slot " + std::to_string(slot_) + " of " + module_->path() + ")";
}

bool Pkcs11Token::submit(std::function<void()> work) {
    {
        std::lock_guard lock(mutex_);
        if (queue_.size() >= settings_.max_queue) return false;
        queue_.push_back(std::move(work));
    }
    work_ready_.notify_one();
    return true;
}

void Pkcs11Token::work() {
    while (true) {
        std::function<void()> job;
        {
            std::unique_lock lock(mutex_);
            work_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return; // stopping, and everything queued is done
            job = std::move(queue_.front());
            queue_.pop_front();
        }
        try {
            job();
        } catch (const std::exception& e) {
            // A job answers its own request (ops/dispatch.cpp); what still escapes is reported
            // here, where the keys layer has no logger, and the worker carries on.
            std::fprintf(stderr, "keyserver: %s: a token operation failed: %s\n", name().c_str(),
                         e.what());
        } catch (...) {
            std::fprintf(stderr, "keyserver: %s: a token operation failed\n", name().c_str());
        }
    }
}

void Pkcs11Token::log_in(CK_SESSION_HANDLE session) {
    CK_RV rv =
        fn()->C_Login(session, CKU_USER,
                      reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(pin_.data())), pin_.size());
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
        throw HsmError(name() + ": login failed", rv);
}

CK_SESSION_HANDLE Pkcs11Token::acquire() {
    const size_t limit = std::max<size_t>(1, settings_.max_sessions);
    std::unique_lock lock(mutex_);
    if (!session_free_.wait_for(lock, settings_.session_wait,
                                [&] { return !idle_.empty() || open_ < limit; }))
        throw HsmError(name() + ": no free session within " +
                       std::to_string(settings_.session_wait.count()) + " ms (max_sessions " +
                       std::to_string(limit) + ")");
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    if (!idle_.empty()) {
        s = idle_.back();
        idle_.pop_back();
    } else {
        ++open_;
        lock.unlock();
        CK_RV rv = fn()->C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr, nullptr, &s);
        lock.lock();
        if (rv != CKR_OK) {
            --open_;
            session_free_.notify_one();
            throw HsmError(name() + ": cannot open a session", rv);
        }
    }
    if (logged_in_) return s;
    // Logging in one session logs in the application: later sessions find it logged in.
    lock.unlock();
    try {
        log_in(s);
    } catch (...) {
        release(s, true);
        throw;
    }
    lock.lock();
    logged_in_ = true;
    return s;
}

void Pkcs11Token::release(CK_SESSION_HANDLE session, bool broken) {
    if (broken) fn()->C_CloseSession(session);
    {
        std::lock_guard lock(mutex_);
        if (broken) {
            --open_;
            logged_in_ = false; // the next session logs in again (the token may have come back)
        } else {
            idle_.push_back(session);
        }
    }
    session_free_.notify_one();
}

void Pkcs11Token::with_session(const std::function<void(CK_SESSION_HANDLE)>& op) {
    for (int attempt = 0;; ++attempt) {
        CK_SESSION_HANDLE s = acquire();
        try {
            op(s);
            release(s, false);
            return;
        } catch (const HsmError& e) {
            bool lost = session_lost(e.rv());
            release(s, lost);
            if (!lost || attempt > 0) throw;
        } catch (...) {
            release(s, false);
            throw;
        }
    }
}

bool Pkcs11Token::offers(CK_MECHANISM_TYPE mechanism, CK_FLAGS flags) const {
    CK_MECHANISM_INFO info{};
    return fn()->C_GetMechanismInfo(slot_, mechanism, &info) == CKR_OK &&
           (info.flags & flags) == flags;
}

std::vector<std::string> Pkcs11Token::mechanisms(tls::KeyKind kind) const {
    std::vector<CK_MECHANISM_TYPE> wanted = {p11::signing_mechanism(kind)};
    if (kind == tls::KeyKind::RSA) wanted = {CKM_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_RSA_X_509};
    std::vector<std::string> out;
    for (CK_MECHANISM_TYPE m : wanted) {
        CK_MECHANISM_INFO info{};
        if (fn()->C_GetMechanismInfo(slot_, m, &info) != CKR_OK) continue;
        std::string what;
        if (info.flags & CKF_SIGN) what += "sign";
        if (info.flags & CKF_DECRYPT) what += what.empty() ? "decrypt" : "+decrypt";
        if (!what.empty()) out.push_back(p11::mechanism_name(m) + " (" + what + ")");
    }
    return out;
}

std::vector<CK_MECHANISM_TYPE> Pkcs11Token::signing_mechanisms() const {
    CK_ULONG count = 0;
    std::vector<CK_MECHANISM_TYPE> all;
    if (fn()->C_GetMechanismList(slot_, nullptr, &count) == CKR_OK) {
        all.resize(count);
        if (fn()->C_GetMechanismList(slot_, all.data(), &count) != CKR_OK) count = 0;
        all.resize(count);
    }
    std::vector<CK_MECHANISM_TYPE> out;
    for (CK_MECHANISM_TYPE m : all)
        if (offers(m, CKF_SIGN)) out.push_back(m);
    return out;
}

} // namespace keyless::keyserver
