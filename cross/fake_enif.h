// A small fake of the erl_nif API for cross/static_harness.cpp: the static NIF archive is linked
// without an emulator, so its enif_* references are resolved here. Test code only; the archive
// itself never carries stubs.
//
// A term is an index into a table of recorded values (an atom's name, a binary's bytes, a
// raised exception), so the harness can look at what a NIF returned.
#pragma once

#include <erl_nif.h>

#include <string>

namespace dala::harness {

enum class Kind { Atom, Binary, Integer, Other, Exception };

struct Term {
  Kind kind;
  std::string text;  // atom name, binary bytes
  long number = 0;
};

ErlNifEnv* fake_env();
const Term& lookup(ERL_NIF_TERM t);
ERL_NIF_TERM make_binary_term(const std::string& bytes);
// Resource types opened through enif_open_resource_type_x, by name.
bool resource_type_opened(const std::string& name);

}  // namespace dala::harness
