#include "softhsm.hpp"

#include <p11-kit/pkcs11.h>

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace keyless::test {

namespace {

void must(const std::string& command) {
    std::string out;
    if (run_command(command, &out) != 0)
        throw std::runtime_error("`" + command + "` failed:\n" + out);
}

void must_ok(CK_RV rv, const char* what) {
    if (rv != CKR_OK)
        throw std::runtime_error(std::string(what) + " failed: " + std::to_string(rv));
}

struct DlClose {
    void operator()(void* handle) const { dlclose(handle); }
};

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

void SoftHsm::generate_ed448(const std::string& label, uint8_t id) {
    std::unique_ptr<void, DlClose> lib(dlopen(module().c_str(), RTLD_NOW | RTLD_LOCAL));
    if (!lib) throw std::runtime_error("cannot load " + module());
    auto get_list = reinterpret_cast<CK_C_GetFunctionList>(dlsym(lib.get(), "C_GetFunctionList"));
    CK_FUNCTION_LIST* f = nullptr;
    if (!get_list) throw std::runtime_error(module() + " has no C_GetFunctionList");
    must_ok(get_list(&f), "C_GetFunctionList");
    must_ok(f->C_Initialize(nullptr), "C_Initialize");
    std::unique_ptr<CK_FUNCTION_LIST, void (*)(CK_FUNCTION_LIST*)> finalize(
        f, [](CK_FUNCTION_LIST* fl) { fl->C_Finalize(nullptr); });
    CK_ULONG count = 0;
    must_ok(f->C_GetSlotList(CK_TRUE, nullptr, &count), "C_GetSlotList");
    std::vector<CK_SLOT_ID> slots(count);
    must_ok(f->C_GetSlotList(CK_TRUE, slots.data(), &count), "C_GetSlotList");
    for (CK_SLOT_ID slot : slots) {
        CK_TOKEN_INFO info{};
        if (f->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
        std::string token_label(reinterpret_cast<const char*>(info.label), sizeof info.label);
        if (token_label.substr(0, token_label.find_last_not_of(' ') + 1) != label_) continue;
        CK_SESSION_HANDLE session = 0;
        must_ok(
            f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session),
            "C_OpenSession");
        must_ok(
            f->C_Login(session, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin_.data()), pin_.size()),
            "C_Login");
        CK_BYTE ed448_oid[] = {0x06, 0x03, 0x2b, 0x65, 0x71}; // 1.3.101.113
        CK_BBOOL yes = CK_TRUE;
        std::string name = label;
        CK_ATTRIBUTE pub[] = {{CKA_EC_PARAMS, ed448_oid, sizeof ed448_oid},
                              {CKA_TOKEN, &yes, sizeof yes},
                              {CKA_VERIFY, &yes, sizeof yes},
                              {CKA_LABEL, name.data(), name.size()},
                              {CKA_ID, &id, 1}};
        CK_ATTRIBUTE priv[] = {
            {CKA_TOKEN, &yes, sizeof yes},         {CKA_PRIVATE, &yes, sizeof yes},
            {CKA_SENSITIVE, &yes, sizeof yes},     {CKA_SIGN, &yes, sizeof yes},
            {CKA_LABEL, name.data(), name.size()}, {CKA_ID, &id, 1}};
        CK_MECHANISM gen{CKM_EC_EDWARDS_KEY_PAIR_GEN, nullptr, 0};
        CK_OBJECT_HANDLE pub_key = 0, priv_key = 0;
        CK_RV rv = f->C_GenerateKeyPair(session, &gen, pub, 5, priv, 6, &pub_key, &priv_key);
        f->C_Logout(session);
        f->C_CloseSession(session);
        must_ok(rv, "C_GenerateKeyPair (Ed448)");
        return;
    }
    throw std::runtime_error("no token '" + label_ + "' in " + module());
}

void SoftHsm::lose_objects() {
    must("find " + (dir_ / "tokens") + " -name '*.object' -delete");
}

} // namespace keyless::test
