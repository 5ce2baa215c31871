// Which keyservers lack keyless's extensions (stock gokeyless servers answer them with BadOpcode),
// learnt per endpoint: operations for such a server go straight to the gokeyless equivalents
// (saving a round trip), and once a connection to it has broken (a restart, perhaps an upgrade to
// our keyserver) it is probed again, so replacing the server needs no terminator restart. The
// pooled connections to one server (connections_per_server) share what was learnt.
#pragma once

#include "call.hpp"

#include <map>
#include <mutex>
#include <string>

namespace keyless::client {

class ExtensionSupport {
  public:
    ExtensionSupport(); // registers its lock with the fork handlers (fork_locks.hpp)
    ~ExtensionSupport();
    ExtensionSupport(const ExtensionSupport&) = delete;
    ExtensionSupport& operator=(const ExtensionSupport&) = delete;

    // True when the endpoint that served this URI's last call lacked extensions on the
    // connection it was reached by.
    bool missing(const KeyUri& uri) const;
    // Learns from a finished call for `uri`: which endpoint and connection served it, and
    // whether it refused an extension.
    void observe(const KeyUri& uri, const Call& call, bool refused_extension);

  private:
    mutable std::mutex mutex_; // calls finish on every thread of the application
    std::map<std::string, std::string> served_by_; // URI -> endpoint of its last call
    std::map<std::string, uint64_t> missing_;      // endpoint -> epoch in which it lacked them
};

} // namespace keyless::client
