// The static NIF without a VM: links dala_dist_nif.a (built with STATIC_ERLANG_NIF_LIBNAME=
// dala_dist_nif, as a phone app links it), calls dala_dist_nif_nif_init() the way the BEAM's
// static NIF table does, and checks the ErlNifEntry it returns: the module name, every function
// with its arity and dirty flag, the callbacks. Then it runs load(), two NIFs and unload()
// against the fake erl_nif of fake_enif.cpp. Exit status 0 and "static harness: PASS" when all
// holds; built and run by `make cross-ci` for the host and for arm64 (under qemu).
#include <cstdio>
#include <cstring>
#include <string>

#include "fake_enif.h"

extern "C" ErlNifEntry* dala_dist_nif_nif_init(void);

#if DALA_HARNESS_NEIGHBOUR
// cross/neighbour.cpp: same names as libsodium's and dala's, other meanings.
extern "C" int sodium_init(void);
namespace dala {
enum class Platform { Android, Ios, Host };
const char* platform_name(Platform) noexcept;
}  // namespace dala
#endif

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

struct Expected {
  const char* name;
  unsigned arity;
  unsigned flags;
};

// The table lib/dala_dist_nif.erl declares stubs for.
constexpr Expected kFunctions[] = {
    {"platform", 0, 0},
    {"cookie_from_env", 2, 0},
    {"apply_suffix", 2, 0},
    {"validate_node", 1, 0},
    {"epmd_names", 3, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"epmd_port_please", 4, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"epmd_kill", 3, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"gate_new", 0, 0},
    {"gate_wait", 4, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"gate_cancel", 1, 0},
};

const ErlNifFunc* find(const ErlNifEntry* entry, const char* name, unsigned arity) {
  for (int i = 0; i < entry->num_of_funcs; ++i) {
    if (std::strcmp(entry->funcs[i].name, name) == 0 && entry->funcs[i].arity == arity) {
      return &entry->funcs[i];
    }
  }
  return nullptr;
}

}  // namespace

int main() {
  using dala::harness::Kind;
  using dala::harness::lookup;

  ErlNifEntry* entry = dala_dist_nif_nif_init();
  check(entry != nullptr, "dala_dist_nif_nif_init() returns an entry");
  if (entry == nullptr) return 1;

  check(entry->major == ERL_NIF_MAJOR_VERSION && entry->minor == ERL_NIF_MINOR_VERSION,
        "NIF API version " + std::to_string(entry->major) + "." + std::to_string(entry->minor));
  check(std::strcmp(entry->name, "dala_dist_nif") == 0,
        std::string("module name is dala_dist_nif (got ") + entry->name + ")");
  constexpr int expected_count = sizeof(kFunctions) / sizeof(kFunctions[0]);
  check(entry->num_of_funcs == expected_count,
        "function count " + std::to_string(entry->num_of_funcs));
  for (const auto& want : kFunctions) {
    const ErlNifFunc* f = find(entry, want.name, want.arity);
    const std::string label = std::string(want.name) + "/" + std::to_string(want.arity);
    check(f != nullptr && f->fptr != nullptr, label + " present");
    if (f != nullptr) {
      check(f->flags == want.flags, label + (want.flags ? " dirty IO" : " normal scheduler") +
                                        " (flags " + std::to_string(f->flags) + ")");
    }
  }
  check(entry->load != nullptr && entry->upgrade != nullptr && entry->unload != nullptr,
        "load, upgrade and unload set");
  check(entry->reload == nullptr, "no reload (deprecated)");
  check(std::strcmp(entry->vm_variant, ERL_NIF_VM_VARIANT) == 0,
        std::string("VM variant ") + entry->vm_variant);

  // load(), then two NIFs through their table entries, then unload().
  ErlNifEnv* env = dala::harness::fake_env();
  void* priv = nullptr;
  check(entry->load(env, &priv, 0) == 0, "load() succeeds");
  check(dala::harness::resource_type_opened("dala_gate"), "load() opens the dala_gate resource");

  const ErlNifFunc* platform = find(entry, "platform", 0);
  if (platform != nullptr) {
    const auto& t = lookup(platform->fptr(env, 0, nullptr));
    check(t.kind == Kind::Atom && (t.text == "host" || t.text == "android" || t.text == "ios"),
          "platform() = " + t.text);
  }
  const ErlNifFunc* apply_suffix = find(entry, "apply_suffix", 2);
  if (apply_suffix != nullptr) {
    const ERL_NIF_TERM args[] = {dala::harness::make_binary_term("my_app@127.0.0.1"),
                                 dala::harness::make_binary_term("emulator-5554")};
    const auto& t = lookup(apply_suffix->fptr(env, 2, args));
    check(t.kind == Kind::Binary && t.text == "my_app_emulator-5554@127.0.0.1",
          "apply_suffix(\"my_app@127.0.0.1\", \"emulator-5554\") = " + t.text);
    const ERL_NIF_TERM bad[] = {dala::harness::make_binary_term("my_app@127.0.0.1"),
                                platform != nullptr ? platform->fptr(env, 0, nullptr) : args[0]};
    check(lookup(apply_suffix->fptr(env, 2, bad)).kind == Kind::Exception,
          "apply_suffix with an atom suffix raises");
  }
  entry->unload(env, priv);

#if DALA_HARNESS_NEIGHBOUR
  // The NIF's libsodium and platform_name stayed its own (load() above called its sodium_init,
  // platform() its platform_name), and the neighbour's are reachable under the same names.
  check(sodium_init() == 42, "the neighbour's sodium_init is its own (no clash with the NIF's)");
  check(std::strcmp(dala::platform_name(dala::Platform::Host), "neighbour") == 0,
        "the neighbour's dala::platform_name is its own (no clash with the NIF's)");
#endif

  std::printf("static harness: %s (%d failure%s)\n", failures == 0 ? "PASS" : "FAIL", failures,
              failures == 1 ? "" : "s");
  return failures == 0 ? 0 : 1;
}
