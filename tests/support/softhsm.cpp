#include "softhsm.hpp"

#include <cstdlib>
#include <stdexcept>

namespace keyless::test {

namespace {

void must(const std::string& command) {
    std::string out;
    if (run_command(command, &out) != 0)
        throw std::runtime_error("`" + command + "` failed:\n" + out);
}

} // namespace

SoftHsm::SoftHsm(const std::string& label, const std::string& pin) : label_(label), pin_(pin) {
    run_command("mkdir -p " + (dir_ / "tokens"));
    write_file(conf(), "directories.tokendir = " + (dir_ / "tokens") +
                           "\nobjectstore.backend = file\nlog.level = ERROR\n");
    write_file(pin_file(), pin + "\n");
    must("chmod 600 " + pin_file());
    ::setenv("SOFTHSM2_CONF", conf().c_str(), 1);
    must("softhsm2-util --init-token --free --label " + label + " --pin " + pin +
         " --so-pin 87654321");
}

SoftHsm::~SoftHsm() {
    ::unsetenv("SOFTHSM2_CONF");
}

void SoftHsm::generate(const std::string& type, const std::string& label, const std::string& id) {
    must("pkcs11-tool --module " + module() + " --token-label " + label_ + " --login --pin " +
         pin_ + " --keypairgen --key-type " + type + " --label " + label + " --id " + id +
         " --usage-sign" + (type.rfind("rsa", 0) == 0 ? " --usage-decrypt" : "") + " --sensitive");
}

void SoftHsm::lose_objects() {
    must("find " + (dir_ / "tokens") + " -name '*.object' -delete");
}

} // namespace keyless::test
