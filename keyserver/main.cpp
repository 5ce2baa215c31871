// keyserver: serves private-key operations to keyless edges over mutual TLS.
#include "app.hpp"

int main(int argc, char** argv) {
    return keyless::keyserver::run_keyserver(std::vector<std::string>(argv + 1, argv + argc));
}
