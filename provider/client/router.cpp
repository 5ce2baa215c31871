#include "router.hpp"

#include <algorithm>

namespace keyless::client {

std::vector<std::string> names_of(const std::vector<Endpoint>& endpoints) {
    std::vector<std::string> names;
    for (const auto& ep : endpoints)
        names.push_back(ep.to_string());
    return names;
}

Router::Router(std::function<double()> jitter, std::chrono::milliseconds request_timeout)
    : request_timeout_(request_timeout), endpoints_(std::move(jitter)) {}

DnsCache::Expansion Router::expand(const Call& call, Clock::time_point now) {
    DnsCache::Expansion out;
    for (const auto& ep : call.endpoints)
        dns_.expand(ep, now, out);
    return out;
}

const std::vector<std::string>& Router::tried(const Call& call) const {
    static const std::vector<std::string> none;
    auto it = tickets_.find(&call);
    return it == tickets_.end() ? none : it->second.tried;
}

bool Router::can_move(const Call& call, Clock::time_point now) {
    auto targets = expand(call, now);
    return targets.pending || endpoints_.pick(names_of(targets.endpoints), tried(call));
}

std::optional<std::string> Router::pick(const Call& call, Clock::time_point now) {
    return endpoints_.pick(names_of(expand(call, now).endpoints), tried(call));
}

Router::Decision Router::route(const std::shared_ptr<Call>& call, Clock::time_point now) {
    auto expansion = expand(*call, now);
    const std::vector<Endpoint>& targets = expansion.endpoints;
    std::vector<std::string> names = names_of(targets);
    std::optional<std::string> name =
        call->probe_of.empty() ? endpoints_.pick(names, tried(*call)) : call->probe_of;
    if (!name && expansion.pending) {
        awaiting_dns_.push_back(call); // routed again when a name is answered, or expires
        return {Decision::Kind::AwaitDns, {}, {}};
    }
    if (!name) {
        std::vector<std::string> reasons = expansion.unresolved;
        if (!names.empty()) reasons.push_back(endpoints_.why_all_down(names, now));
        std::string why;
        for (const auto& reason : reasons)
            why += (why.empty() ? "" : "; ") + reason;
        if (names.size() + expansion.unresolved.size() != 1)
            why = "no keyserver of the URI can take it: " + why;
        return {Decision::Kind::Fail, {}, why};
    }
    auto found = std::find_if(targets.begin(), targets.end(),
                              [&](const Endpoint& e) { return e.to_string() == *name; });
    // A probe's endpoint may have left its name's addresses: it is probed as it was known.
    auto remembered = known_.find(*name);
    if (found == targets.end() && remembered == known_.end())
        return {Decision::Kind::Fail, {}, *name + " is no longer in DNS"};
    Endpoint ep = found != targets.end() ? *found : remembered->second;
    known_[*name] = ep;
    return {Decision::Kind::Send, ep, {}};
}

void Router::uncount(Ticket& ticket) {
    if (ticket.counted_at.empty()) return;
    endpoints_.finished(ticket.counted_at);
    ticket.counted_at.clear();
}

void Router::assign(Call& call, const std::string& endpoint) {
    Ticket& ticket = tickets_[&call];
    call.last_endpoint = endpoint;
    ticket.epoch = epochs_[endpoint];
    call.sent_fallback = call.fallback && extensions_.lacks(endpoint, ticket.epoch);
    uncount(ticket);
    endpoints_.started(endpoint);
    ticket.counted_at = endpoint;
    if (call.probe_of.empty()) endpoints_.picked();
}

bool Router::retry_elsewhere(Call& call, Setback setback, Clock::time_point now) {
    if (call.done()) return false;
    Ticket& ticket = tickets_[&call];
    uncount(ticket);
    if (!call.probe_of.empty()) return false; // a probe tests its own endpoint only
    switch (setback) {
    case Setback::Unsent:
        break;
    case Setback::Sent: // signing and TLS decryption are safe to repeat, once
        if (ticket.retries_left-- <= 0) return false;
        break;
    case Setback::Shed:
    case Setback::LacksOperation:
        ticket.tried.push_back(call.last_endpoint);
        break;
    }
    return now < call.deadline && can_move(call, now);
}

Router::AfterReply Router::replied(Call& call, const std::string& endpoint,
                                   const protocol::Operation& reply, Clock::time_point now) {
    // A reply proves the endpoint works (a probe's Pong is counted in finished()).
    if (!call.probe_of.empty()) return AfterReply::Finish;
    endpoints_.succeeded(endpoint);
    auto error = protocol::error_of(reply);
    // A keyserver without keyless's extensions (gokeyless): the same operation in its form, on
    // the same connection, at once, and later calls to it in that form from the start. An
    // operation with no such form (get-public-key, Ed448, ML-DSA) may be known to another
    // keyserver of the URI (a fleet halfway through an upgrade).
    if (error == protocol::ErrorCode::BadOpcode && !call.sent_fallback) {
        extensions_.refused(endpoint, tickets_[&call].epoch);
        if (call.fallback) {
            call.sent_fallback = true;
            return AfterReply::ResendFallback;
        }
        return retry_elsewhere(call, Setback::LacksOperation, now) ? AfterReply::Reroute
                                                                   : AfterReply::Finish;
    }
    // Shed by this keyserver (rate limit or full buffers): another of the URI's fleet may have
    // room, while the deadline allows.
    if (error == protocol::ErrorCode::Overloaded)
        return retry_elsewhere(call, Setback::Shed, now) ? AfterReply::Reroute : AfterReply::Finish;
    return AfterReply::Finish;
}

void Router::connect_failed(const Endpoint& ep, const std::string& why, Clock::time_point now) {
    endpoints_.failed(ep.to_string(), why, now);
    // The name may point elsewhere now: look it up again (its addresses serve meanwhile).
    if (!ep.address.empty()) dns_.stale(ep.host);
}

void Router::finished(const Call& call, const std::optional<protocol::Operation>& response,
                      const std::string& message, Clock::time_point now) {
    if (auto it = tickets_.find(&call); it != tickets_.end()) {
        uncount(it->second);
        tickets_.erase(it);
    }
    if (call.probe_of.empty()) return;
    if (response && response->is(protocol::Opcode::Pong))
        endpoints_.succeeded(call.probe_of);
    else
        endpoints_.failed(call.probe_of, "probe: " + message, now);
}

std::vector<std::shared_ptr<Call>> Router::due_probes(Clock::time_point now) {
    std::vector<std::shared_ptr<Call>> probes;
    for (const auto& name : endpoints_.take_due_probes(now)) {
        auto ep = known_.find(name);
        if (ep == known_.end()) {
            endpoints_.probe_ended(name);
            continue;
        }
        auto probe = std::make_shared<Call>(
            std::vector<Endpoint>{ep->second},
            protocol::Operation::make(protocol::Opcode::Ping, {'k', 'l'}), now + request_timeout_);
        probe->probe_of = name;
        probes.push_back(std::move(probe));
    }
    return probes;
}

// Endpoints of `host` at addresses DNS no longer gives: no probes, no health, nothing learnt.
std::vector<std::string> Router::answered(const std::string& host, DnsAnswer answer,
                                          Clock::time_point now) {
    auto departed = dns_.answered(host, std::move(answer), now);
    for (auto it = known_.begin(); it != known_.end();) {
        const Endpoint& ep = it->second;
        if (ep.host != host ||
            std::find(departed.begin(), departed.end(), ep.address) == departed.end()) {
            ++it;
            continue;
        }
        endpoints_.forget(it->first);
        epochs_.erase(it->first);
        extensions_.forget(it->first);
        it = known_.erase(it);
    }
    return departed;
}

std::vector<std::pair<std::shared_ptr<Call>, std::string>>
Router::expire_dns_waits(Clock::time_point now) {
    std::vector<std::pair<std::shared_ptr<Call>, std::string>> expired;
    std::erase_if(awaiting_dns_, [&](const std::shared_ptr<Call>& call) {
        if (now < call->deadline) return false;
        std::string hosts;
        for (const auto& ep : call->endpoints)
            if (!is_ip_literal(ep.host)) hosts += (hosts.empty() ? "" : ", ") + ep.host;
        expired.emplace_back(call, "no address for " + hosts + " within " +
                                       std::to_string(request_timeout_.count()) +
                                       " ms: the DNS lookup is slow or the resolver does not "
                                       "answer");
        return true;
    });
    return expired;
}

std::optional<Router::Clock::time_point> Router::next_wake() const {
    std::optional<Clock::time_point> next = endpoints_.next_probe();
    for (const auto& call : awaiting_dns_)
        next = next ? std::min(*next, call->deadline) : call->deadline;
    return next;
}

} // namespace keyless::client
