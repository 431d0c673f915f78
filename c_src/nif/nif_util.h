// The NIF boundary: term decoding, error raising and the exception guard.
//
// Every NIF body runs inside dala::nif::guard(), so no C++ exception ever
// crosses into the VM:
//   std::invalid_argument -> raises %ArgumentError{message: what()}
//   std::bad_alloc        -> raises %RuntimeError{message: "out of memory"}
//   std::exception        -> raises %RuntimeError{message: what()}
//   anything else         -> raises %RuntimeError{message: "unknown C++ exception"}
// Messages name the offending argument ("app_name must be ..."), and are built
// by the core, which never puts secret bytes into one.
#pragma once

#include <erl_nif.h>

#include <cstdint>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>

namespace dala::nif {

// Atoms, made once in load() (see nif.cpp).
struct Atoms {
  ERL_NIF_TERM ok, error, true_;
  ERL_NIF_TERM struct_, exception_, message;
  ERL_NIF_TERM argument_error, runtime_error;
  // EPMD and gate results.
  ERL_NIF_TERM ready, timeout, cancelled, not_registered;
  ERL_NIF_TERM elapsed_ms, attempts, names, last_error, epmd_port;
  // Cookie results.
  ERL_NIF_TERM generated, weak_short, weak_distinct;
};
extern Atoms atoms;

ERL_NIF_TERM make_atom(ErlNifEnv* env, const char* name);
ERL_NIF_TERM make_binary(ErlNifEnv* env, std::string_view bytes);
std::string_view get_binary(ErlNifEnv* env, ERL_NIF_TERM term, const char* arg_name);
long get_int(ErlNifEnv* env, ERL_NIF_TERM term, const char* arg_name, long min, long max);

ERL_NIF_TERM raise_exception(ErlNifEnv* env, ERL_NIF_TERM module, std::string_view message);

template <typename F>
ERL_NIF_TERM guard(ErlNifEnv* env, F&& body) noexcept {
  try {
    return body();
  } catch (const std::invalid_argument& e) {
    return raise_exception(env, atoms.argument_error, e.what());
  } catch (const std::bad_alloc&) {
    return raise_exception(env, atoms.runtime_error, "out of memory");
  } catch (const std::exception& e) {
    return raise_exception(env, atoms.runtime_error, e.what());
  } catch (...) {
    return raise_exception(env, atoms.runtime_error, "unknown C++ exception");
  }
}

// Every NIF of the library; the table is in nif.cpp, the bodies in nif_<concern>.cpp.
#define DALA_NIF(name) ERL_NIF_TERM name(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[])
DALA_NIF(platform);
DALA_NIF(cookie_from_env);
DALA_NIF(apply_suffix);
DALA_NIF(validate_node);
DALA_NIF(epmd_names);
DALA_NIF(epmd_port_please);
DALA_NIF(epmd_kill);
DALA_NIF(gate_new);
DALA_NIF(gate_wait);
DALA_NIF(gate_cancel);

// Per-concern load hooks, called from load() in nif.cpp; return false to fail the load
// and set *why to a static reason string.
bool load_cookie(ErlNifEnv* env, const char** why);
void unload_cookie();
bool load_gate(ErlNifEnv* env, const char** why);

}  // namespace dala::nif
