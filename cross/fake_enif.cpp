// The fake erl_nif API of the static-NIF harness (see fake_enif.h).
#include "fake_enif.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <set>
#include <vector>

namespace dala::harness {
namespace {

std::deque<Term>& terms() {
  static std::deque<Term> table;  // push_back keeps earlier elements in place
  return table;
}

std::set<std::string>& resource_types() {
  static std::set<std::string> names;
  return names;
}

ERL_NIF_TERM add(Term t) {
  terms().push_back(std::move(t));
  return static_cast<ERL_NIF_TERM>(terms().size());  // 0 is never a term
}

// Keeps binaries' storage stable while the table grows.
std::vector<std::unique_ptr<std::string>>& binary_storage() {
  static std::vector<std::unique_ptr<std::string>> storage;
  return storage;
}

}  // namespace

ErlNifEnv* fake_env() {
  static int env_token;
  return reinterpret_cast<ErlNifEnv*>(&env_token);
}

const Term& lookup(ERL_NIF_TERM t) {
  if (t == 0 || t > terms().size()) {
    std::fprintf(stderr, "harness: not a term: %lu\n", static_cast<unsigned long>(t));
    std::abort();
  }
  return terms()[t - 1];
}

ERL_NIF_TERM make_binary_term(const std::string& bytes) { return add({Kind::Binary, bytes}); }

bool resource_type_opened(const std::string& name) { return resource_types().count(name) > 0; }

}  // namespace dala::harness

using dala::harness::add;
using dala::harness::Kind;
using dala::harness::lookup;

extern "C" {

int enif_inspect_binary(ErlNifEnv*, ERL_NIF_TERM term, ErlNifBinary* bin) {
  const auto& t = lookup(term);
  if (t.kind != Kind::Binary) return 0;
  auto& storage = dala::harness::binary_storage();
  storage.push_back(std::make_unique<std::string>(t.text));
  bin->size = storage.back()->size();
  bin->data = reinterpret_cast<unsigned char*>(storage.back()->data());
  return 1;
}

ERL_NIF_TERM enif_make_badarg(ErlNifEnv*) { return add({Kind::Exception, "badarg"}); }

ERL_NIF_TERM enif_make_atom(ErlNifEnv*, const char* name) { return add({Kind::Atom, name}); }

int enif_make_existing_atom(ErlNifEnv*, const char*, ERL_NIF_TERM*, ErlNifCharEncoding) {
  return 0;  // every atom is new: enif_make_atom makes it
}

ERL_NIF_TERM enif_make_tuple(ErlNifEnv*, unsigned, ...) { return add({Kind::Other, "tuple"}); }

ERL_NIF_TERM enif_make_list(ErlNifEnv*, unsigned, ...) { return add({Kind::Other, "list"}); }

ERL_NIF_TERM enif_make_list_cell(ErlNifEnv*, ERL_NIF_TERM, ERL_NIF_TERM) {
  return add({Kind::Other, "list"});
}

int enif_fprintf(FILE* filep, const char* format, ...) {
  va_list args;
  va_start(args, format);
  const int n = std::vfprintf(filep, format, args);
  va_end(args);
  return n;
}

int enif_get_long(ErlNifEnv*, ERL_NIF_TERM term, long* ip) {
  const auto& t = lookup(term);
  if (t.kind != Kind::Integer) return 0;
  *ip = t.number;
  return 1;
}

ERL_NIF_TERM enif_make_uint(ErlNifEnv*, unsigned i) {
  return add({Kind::Integer, "", static_cast<long>(i)});
}

ERL_NIF_TERM enif_make_long(ErlNifEnv*, long i) { return add({Kind::Integer, "", i}); }

void* enif_alloc_resource(ErlNifResourceType*, size_t size) { return std::calloc(1, size); }

void enif_release_resource(void* obj) { std::free(obj); }

ERL_NIF_TERM enif_make_resource(ErlNifEnv*, void*) { return add({Kind::Other, "resource"}); }

int enif_get_resource(ErlNifEnv*, ERL_NIF_TERM, ErlNifResourceType*, void**) { return 0; }

unsigned char* enif_make_new_binary(ErlNifEnv*, size_t size, ERL_NIF_TERM* termp) {
  // The caller writes the bytes after this returns: hand out the table's own storage.
  *termp = add({Kind::Binary, std::string(size, '\0')});
  return reinterpret_cast<unsigned char*>(
      const_cast<char*>(dala::harness::lookup(*termp).text.data()));
}

ErlNifPid* enif_self(ErlNifEnv*, ErlNifPid* pid) {
  std::memset(pid, 0, sizeof(*pid));
  return pid;
}

ERL_NIF_TERM enif_raise_exception(ErlNifEnv*, ERL_NIF_TERM reason) {
  (void)reason;
  return add({Kind::Exception, "raised"});
}

int enif_getenv(const char* key, char* value, size_t* value_size) {
  const char* v = std::getenv(key);
  if (v == nullptr) return -1;
  const size_t n = std::strlen(v);
  if (n + 1 > *value_size) {
    *value_size = n + 1;
    return 1;
  }
  std::memcpy(value, v, n + 1);
  *value_size = n;
  return 0;
}

ErlNifResourceType* enif_open_resource_type_x(ErlNifEnv*, const char* name_str,
                                              const ErlNifResourceTypeInit*, ErlNifResourceFlags,
                                              ErlNifResourceFlags*) {
  dala::harness::resource_types().insert(name_str);
  static int type_token;
  return reinterpret_cast<ErlNifResourceType*>(&type_token);
}

int enif_monitor_process(ErlNifEnv*, void*, const ErlNifPid*, ErlNifMonitor*) { return 0; }

int enif_make_map_from_arrays(ErlNifEnv*, ERL_NIF_TERM[], ERL_NIF_TERM[], size_t,
                              ERL_NIF_TERM* map_out) {
  *map_out = add({Kind::Other, "map"});
  return 1;
}

}  // extern "C"
