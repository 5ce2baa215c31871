// Which keyservers lack keyless's extensions (stock gokeyless servers answer them with
// BadOpcode), per endpoint: a call that carries its operation in gokeyless's form too is sent in
// that form to an endpoint known to lack them (saving the round trip), and in keyless's form to
// every other, so one URI may mix both kinds of keyserver (a rolling upgrade). What was learnt
// lasts while the connections to the endpoint do: after one broke (a restart, perhaps an upgrade
// to our keyserver) the endpoint is asked in keyless's form again, so replacing a server needs
// no terminator restart. Owned by the I/O core: used on its thread, or under its I/O lock.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace keyless::client {

class ExtensionSupport {
  public:
    // True when `endpoint` refused an extension on a connection of `epoch` (how many of its
    // connections had died when the call was sent).
    bool lacks(const std::string& endpoint, uint64_t epoch) const;
    // `endpoint` answered an extension with BadOpcode on a connection of `epoch`.
    void refused(const std::string& endpoint, uint64_t epoch) { refused_in_[endpoint] = epoch; }
    void forget(const std::string& endpoint) { refused_in_.erase(endpoint); }

  private:
    std::map<std::string, uint64_t> refused_in_; // endpoint -> epoch in which it refused
};

} // namespace keyless::client
