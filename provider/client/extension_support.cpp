#include "extension_support.hpp"

#include "fork_locks.hpp"

namespace keyless::client {

ExtensionSupport::ExtensionSupport() {
    register_fork_lock(mutex_, ForkLockRank::ExtensionSupport);
}

ExtensionSupport::~ExtensionSupport() {
    unregister_fork_lock(mutex_);
}

bool ExtensionSupport::missing(const KeyUri& uri) const {
    std::lock_guard lock(mutex_);
    auto served = served_by_.find(uri.to_string());
    const std::string endpoint = served != served_by_.end() ? served->second
                                 : uri.endpoints.empty()    ? std::string("servers")
                                                            : uri.endpoints.front().to_string();
    return missing_.count(endpoint) != 0;
}

void ExtensionSupport::observe(const KeyUri& uri, const Call& call, bool refused_extension) {
    if (!call.response || call.last_endpoint.empty()) return; // no server answered
    std::lock_guard lock(mutex_);
    served_by_[uri.to_string()] = call.last_endpoint;
    if (refused_extension) {
        missing_[call.last_endpoint] = call.endpoint_epoch;
        return;
    }
    auto it = missing_.find(call.last_endpoint);
    if (it != missing_.end() && it->second != call.endpoint_epoch)
        missing_.erase(it); // answered after a connection to it broke: probe it again
}

} // namespace keyless::client
