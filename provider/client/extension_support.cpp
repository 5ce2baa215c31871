#include "extension_support.hpp"

namespace keyless::client {

bool ExtensionSupport::lacks(const std::string& endpoint, uint64_t epoch) const {
    auto it = refused_in_.find(endpoint);
    return it != refused_in_.end() && it->second == epoch;
}

} // namespace keyless::client
