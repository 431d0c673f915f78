// Library load, the atom table and the NIF function table.
#include <sodium.h>

#include <cstring>

#if defined(__ANDROID__)
#include <android/log.h>
#endif

#include "nif_util.h"
#include "platform.h"

namespace dala::nif {

Atoms atoms;

ERL_NIF_TERM make_atom(ErlNifEnv* env, const char* name) {
  ERL_NIF_TERM atom;
  if (enif_make_existing_atom(env, name, &atom, ERL_NIF_LATIN1)) return atom;
  return enif_make_atom(env, name);
}

ERL_NIF_TERM make_binary(ErlNifEnv* env, std::string_view bytes) {
  ERL_NIF_TERM term;
  unsigned char* data = enif_make_new_binary(env, bytes.size(), &term);
  if (data == nullptr) throw std::bad_alloc();
  if (!bytes.empty()) std::memcpy(data, bytes.data(), bytes.size());
  return term;
}

std::string_view get_binary(ErlNifEnv* env, ERL_NIF_TERM term, const char* arg_name) {
  ErlNifBinary bin;
  if (!enif_inspect_binary(env, term, &bin)) {
    throw std::invalid_argument(std::string(arg_name) + " must be a binary");
  }
  return {reinterpret_cast<const char*>(bin.data), bin.size};
}

long get_int(ErlNifEnv* env, ERL_NIF_TERM term, const char* arg_name, long min, long max) {
  long value;
  if (!enif_get_long(env, term, &value) || value < min || value > max) {
    throw std::invalid_argument(std::string(arg_name) + " must be an integer in " +
                                std::to_string(min) + ".." + std::to_string(max));
  }
  return value;
}

ERL_NIF_TERM raise_exception(ErlNifEnv* env, ERL_NIF_TERM module, std::string_view message) {
  // An Elixir exception is a map: %{__struct__: Mod, __exception__: true, message: Msg}.
  ERL_NIF_TERM text;
  unsigned char* data = enif_make_new_binary(env, message.size(), &text);
  if (data == nullptr) return enif_raise_exception(env, make_atom(env, "out_of_memory"));
  if (!message.empty()) std::memcpy(data, message.data(), message.size());
  ERL_NIF_TERM keys[] = {atoms.struct_, atoms.exception_, atoms.message};
  ERL_NIF_TERM values[] = {module, atoms.true_, text};
  ERL_NIF_TERM map;
  if (!enif_make_map_from_arrays(env, keys, values, 3, &map)) return enif_make_badarg(env);
  return enif_raise_exception(env, map);
}

DALA_NIF(platform) {
  (void)argc;
  (void)argv;
  return guard(env, [&] { return make_atom(env, platform_name(compiled_platform())); });
}

namespace {

void make_atoms(ErlNifEnv* env) {
  atoms.ok = make_atom(env, "ok");
  atoms.error = make_atom(env, "error");
  atoms.true_ = make_atom(env, "true");
  atoms.struct_ = make_atom(env, "__struct__");
  atoms.exception_ = make_atom(env, "__exception__");
  atoms.message = make_atom(env, "message");
  atoms.argument_error = make_atom(env, "Elixir.ArgumentError");
  atoms.runtime_error = make_atom(env, "Elixir.RuntimeError");
  atoms.ready = make_atom(env, "ready");
  atoms.timeout = make_atom(env, "timeout");
  atoms.cancelled = make_atom(env, "cancelled");
  atoms.not_registered = make_atom(env, "not_registered");
  atoms.elapsed_ms = make_atom(env, "elapsed_ms");
  atoms.attempts = make_atom(env, "attempts");
  atoms.names = make_atom(env, "names");
  atoms.last_error = make_atom(env, "last_error");
  atoms.epmd_port = make_atom(env, "epmd_port");
  atoms.generated = make_atom(env, "generated");
  atoms.weak_short = make_atom(env, "weak_short");
  atoms.weak_distinct = make_atom(env, "weak_distinct");
}

// Why load() failed, where a developer can see it: stderr, and on Android also logcat (an app's
// stderr goes to /dev/null there).
void report_load_failure(const char* why) {
#if defined(__ANDROID__)
  __android_log_print(ANDROID_LOG_ERROR, "dala", "dala_dist_nif: load failed: %s", why);
#endif
  enif_fprintf(stderr, "dala_dist_nif: load failed: %s\n", why);
}

// load() may only fail by returning non-zero; the Erlang side (dala_dist_nif.erl)
// turns that into an exception naming the library path. The reason is logged here
// because erl_nif has no way to hand a string back from load().
int load(ErlNifEnv* env, void** priv_data, ERL_NIF_TERM load_info) {
  (void)priv_data;
  (void)load_info;
  if (sodium_init() < 0) {
    report_load_failure("sodium_init() failed");
    return 1;
  }
  make_atoms(env);
  const char* why = nullptr;
  if (!load_cookie(env, &why)) {
    report_load_failure(why ? why : "unknown reason");
    return 2;
  }
  if (!load_gate(env, &why)) {
    report_load_failure(why ? why : "unknown reason");
    unload_cookie();  // undo only what succeeded
    return 3;
  }
  return 0;
}

int upgrade(ErlNifEnv* env, void** priv_data, void** old_priv_data, ERL_NIF_TERM load_info) {
  (void)old_priv_data;
  return load(env, priv_data, load_info);
}

void unload(ErlNifEnv* env, void* priv_data) {
  (void)env;
  (void)priv_data;
  unload_cookie();
}

ErlNifFunc nif_funcs[] = {
    {"platform", 0, platform, 0},
    {"cookie_from_env", 2, cookie_from_env, 0},
    {"apply_suffix", 2, apply_suffix, 0},
    {"validate_node", 1, validate_node, 0},
    {"epmd_names", 3, epmd_names, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"epmd_port_please", 4, epmd_port_please, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"epmd_kill", 3, epmd_kill, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"gate_new", 0, gate_new, 0},
    {"gate_wait", 4, gate_wait, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"gate_cancel", 1, gate_cancel, 0},
};

}  // namespace
}  // namespace dala::nif

// Shared build: defines nif_init (the only exported symbol, see cross/nif_shared.map). Static
// build (STATIC_ERLANG_NIF_LIBNAME=dala_dist_nif, CMake's DALA_NIF_KIND=static): defines
// dala_dist_nif_nif_init, the symbol OTP's static NIF table calls for the archive
// dala_dist_nif.a, and the only global symbol left in it.
ERL_NIF_INIT(dala_dist_nif, dala::nif::nif_funcs, dala::nif::load, nullptr, dala::nif::upgrade,
             dala::nif::unload)
