#include "ops/dispatch.hpp"

#include "algorithms.hpp"
#include "ops/signer.hpp"
#include "tls_shape.hpp"

namespace keyless::keyserver {

using protocol::ErrorCode;
using protocol::Opcode;
using protocol::Operation;

namespace {

Outcome failed(Outcome o, ErrorCode code, std::string reason) {
    o.error = code;
    o.reason = std::move(reason);
    o.response = Operation::error(code);
    return o;
}

bool is_known_request(uint8_t op) {
    switch (static_cast<Opcode>(op)) {
    case Opcode::RSADecrypt:
    case Opcode::Ed25519Sign:
    case Opcode::Ping:
    case Opcode::GetPublicKey:
    case Opcode::SignTLS:
    case Opcode::RSADecryptTLS:
        return true;
    default:
        return algorithms::digest_signing(op).has_value();
    }
}

// Why sign-tls may not sign this message with this key, or empty.
std::string tls_refusal(const tls::Shape& shape, const tls::SchemeInfo& scheme, const Key& key,
                        const KeyPolicy& policy) {
    auto allowed = [&](Permission p) { return policy.allow.count(p) != 0; };
    if (!shape.valid())
        return "not a TLS signature input: " + shape.problem + " (sign-tls signs only TLS " +
               "handshake inputs; anything else needs sign-digest)";
    if (shape.kind == tls::ShapeKind::Tls13ClientCertificateVerify) {
        if (!allowed(Permission::SignTLSClient))
            return "a TLS 1.3 client CertificateVerify needs sign-tls-client on this key";
    } else if (!allowed(Permission::SignTLS)) {
        return "sign-tls is not allowed on this key";
    }
    if (shape.kind == tls::ShapeKind::Tls12DheServerKeyExchange && !policy.tls12_dhe)
        return "TLS 1.2 DHE parameters need \"tls12_dhe\": true on this key";
    return tls::scheme_problem(shape, scheme, {key.kind, key.curve}, policy.allow_sha1);
}

} // namespace

std::string operation_name(const Operation& request) {
    if (!request.opcode) return "unknown";
    uint8_t op = *request.opcode;
    return is_known_request(op) ? std::string(protocol::to_string(Opcode(op)))
                                : "opcode-" + std::to_string(op);
}

Resolution Dispatcher::resolve(const ClientIdentity& client, const Operation& request) const {
    Resolution r;
    if (!request.key_name.empty())
        r.key = state_->keys.by_name(request.key_name);
    else if (request.ski)
        r.key = state_->keys.by_ski(*request.ski);
    if (!r.key) return r;
    r.policy = &state_->policies.policy_for(r.key->name);
    r.allowed = r.policy->client_allowed(client);
    return r;
}

bool Dispatcher::runs_inline(const Operation& request, const Resolution& resolved) const {
    if (request.is(Opcode::Ping) || request.is(Opcode::GetPublicKey)) return true;
    const auto& key = resolved.key;
    // A token key's request is only queued here (answer() hands it to the token's workers).
    return !key || key->kind != tls::KeyKind::RSA || key->ops->has_own_workers();
}

Outcome Dispatcher::handle(const ClientIdentity& client, const Operation& request) const {
    return respond(*state_, client, request, resolve(client, request));
}

void Dispatcher::answer(const ClientIdentity& client, const Operation& request,
                        const Resolution& resolved, std::function<void(Outcome)> done) const {
    // Only a key the client may use is queued: others are refused here, as missing keys are. A
    // key in this process answers here, without the work item's copies of the request.
    if (resolved.allowed && resolved.key->ops->has_own_workers() && !request.is(Opcode::Ping) &&
        !request.is(Opcode::GetPublicKey)) {
        // The state owns the resolution's policy: the work item keeps it alive.
        std::function<void()> work = [state = state_, client, request, resolved, done] {
            // On the token's worker thread: whatever escapes becomes this request's answer.
            Outcome outcome;
            try {
                outcome = respond(*state, client, request, resolved);
            } catch (const std::exception& e) {
                outcome = error_outcome(ErrorCode::Internal,
                                        std::string("the operation failed: ") + e.what());
            }
            done(std::move(outcome));
        };
        switch (resolved.key->ops->place(work)) {
        case KeyOperations::Placement::Queued:
            return;
        case KeyOperations::Placement::Full: {
            Outcome busy =
                error_outcome(protocol::ErrorCode::Overloaded,
                              "the token of key '" + resolved.key->name +
                                  "' has too many operations waiting (pkcs11.max_queue)");
            busy.operation = operation_name(request);
            busy.key_name = resolved.key->name;
            busy.hsm_failure = true;
            return done(std::move(busy));
        }
        case KeyOperations::Placement::Here:
            break;
        }
    }
    done(respond(*state_, client, request, resolved));
}

std::string Resolution::logged_name(const Operation& request) const {
    if (key) return key->name;
    return request.ski ? "ski:" + to_hex(*request.ski) : std::string();
}

Outcome error_outcome(ErrorCode code, std::string reason) {
    return failed({}, code, std::move(reason));
}

Outcome format_error(std::string reason) {
    return failed({}, ErrorCode::Format, std::move(reason));
}

Outcome version_mismatch(uint8_t major) {
    return failed({}, ErrorCode::VersionMismatch,
                  "protocol major version " + std::to_string(major) + " (we speak 1)");
}

namespace {

// sign-TLS: a whole TLS handshake input and its SignatureScheme; sign-digest signs anything,
// otherwise only a strict TLS input, with its permission.
Outcome sign_tls(Outcome& out, const Operation& req, const Key& key, const KeyPolicy& policy) {
    if (!req.signature_scheme)
        return failed(std::move(out), ErrorCode::Format, "no signature scheme");
    auto scheme = tls::scheme_info(*req.signature_scheme);
    if (!scheme)
        return failed(std::move(out), ErrorCode::Format,
                      "unknown signature scheme " + std::to_string(*req.signature_scheme));
    out.operation += std::string(":") + std::string(scheme->name);
    auto shape = tls::parse_shape(req.payload);
    out.shape = shape.name;
    out.size = req.payload.size();
    if (!policy.allow.count(Permission::SignDigest)) {
        if (auto why = tls_refusal(shape, *scheme, key, policy); !why.empty())
            return failed(std::move(out), ErrorCode::PolicyDenied, std::move(why));
    }
    out.response = Operation::make(Opcode::Response, sign_message(key, *scheme, req.payload));
    return std::move(out);
}

// gokeyless's digest signing: the opcode names the digest and the padding.
Outcome sign_digest_op(Outcome& out, const Operation& req, const Key& key, uint8_t op) {
    auto d = algorithms::digest_signing(op);
    if (req.payload.size() != d->digest->size)
        return failed(std::move(out), ErrorCode::Format,
                      "digest is " + std::to_string(req.payload.size()) + " bytes, " +
                          std::string(d->digest->name) + " needs " +
                          std::to_string(d->digest->size));
    out.response =
        Operation::make(Opcode::Response, sign_digest(key, d->padding, *d->digest, req.payload));
    return std::move(out);
}

// The operation itself, once the key is known, usable by the client and the one the edge holds.
Outcome run_operation(Outcome& out, const Operation& req, const Key& key, const KeyPolicy& policy) {
    auto allowed = [&](Permission p) { return policy.allow.count(p) != 0; };
    auto denied = [&](Permission p) {
        return failed(std::move(out), ErrorCode::PolicyDenied,
                      std::string(to_string(p)) + " is not allowed on this key");
    };
    uint8_t op = *req.opcode;
    switch (static_cast<Opcode>(op)) {
    case Opcode::GetPublicKey:
        out.response = Operation::make(Opcode::Response, key.spki);
        return std::move(out);
    case Opcode::SignTLS:
        return sign_tls(out, req, key, policy);
    case Opcode::RSADecryptTLS:
        if (!allowed(Permission::RSADecryptTLS)) return denied(Permission::RSADecryptTLS);
        if (!req.client_version)
            return failed(std::move(out), ErrorCode::Format, "no client version");
        out.response = Operation::make(Opcode::Response,
                                       rsa_decrypt_tls(key, req.payload, *req.client_version));
        return std::move(out);
    case Opcode::RSADecrypt:
        if (!allowed(Permission::RSADecryptRaw)) return denied(Permission::RSADecryptRaw);
        out.response = Operation::make(Opcode::Response, rsa_decrypt_raw(key, req.payload));
        return std::move(out);
    case Opcode::Ed25519Sign:
        if (!allowed(Permission::SignDigest)) return denied(Permission::SignDigest);
        out.response = Operation::make(Opcode::Response,
                                       sign_message(key, *tls::scheme_info(0x0807), req.payload));
        return std::move(out);
    default:
        if (!allowed(Permission::SignDigest)) return denied(Permission::SignDigest);
        return sign_digest_op(out, req, key, op);
    }
}

} // namespace

Outcome Dispatcher::respond(const ServingState& state, const ClientIdentity& client,
                            const Operation& req, const Resolution& resolved) {
    Outcome out;
    if (!req.opcode) return failed(std::move(out), ErrorCode::Format, "no opcode");
    out.operation = operation_name(req);
    if (req.is(Opcode::Response) || req.is(Opcode::Pong) || req.is(Opcode::Error))
        return failed(std::move(out), ErrorCode::UnexpectedOpcode, "response opcode in a request");
    if (!is_known_request(*req.opcode))
        return failed(std::move(out), ErrorCode::BadOpcode, "unknown opcode");
    if (req.is(Opcode::Ping)) {
        if (req.payload.size() > state.max_ping_payload)
            return failed(std::move(out), ErrorCode::Format,
                          "ping payload of " + std::to_string(req.payload.size()) +
                              " bytes exceeds max_ping_payload " +
                              std::to_string(state.max_ping_payload));
        out.response = Operation::make(Opcode::Pong, req.payload);
        return out;
    }

    // The key: by name (our extension), else by SKI (gokeyless).
    if (req.key_name.empty() && !req.ski)
        return failed(std::move(out), ErrorCode::Format, "no key name or SKI");
    const auto& key = resolved.key;
    out.key_name = resolved.logged_name(req);
    if (!key)
        return failed(std::move(out), ErrorCode::KeyNotFound,
                      req.key_name.empty() ? "no key with this SKI"
                                           : "no key of the requested name (" +
                                                 std::to_string(req.key_name.size()) + " bytes)");
    // A key the client may not use answers exactly as a missing one (same code, same padded
    // size, decided before any crypto), so no edge can probe which keys other tenants have.
    if (!resolved.allowed)
        return failed(std::move(out), ErrorCode::KeyNotFound,
                      "client '" + client.display() +
                          "' may not use this key (answered as not found)");
    // The edge says which public key it holds; a name now resolving to another key (replaced in
    // place) must not sign: the edge would send signatures that do not verify.
    if (!req.key_name.empty() && req.ski && key->ski != *req.ski)
        return failed(std::move(out), ErrorCode::KeyMismatch,
                      "request holds the key with SKI " + to_hex(*req.ski) + ", key '" + key->name +
                          "' has SKI " + to_hex(key->ski) + " (stale stub?)");
    try {
        return run_operation(out, req, *key, *resolved.policy);
    } catch (const KeySourceError& e) {
        out.hsm_failure = true;
        return failed(std::move(out), ErrorCode::Internal, e.what());
    } catch (const CryptoError& e) {
        return failed(std::move(out), ErrorCode::Crypto, e.what());
    }
}

} // namespace keyless::keyserver
