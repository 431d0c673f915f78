// PLACEHOLDER: replaced by the cookie work (issue 3).
#include "nif_util.h"
namespace dala::nif {
bool load_cookie(ErlNifEnv*, const char**) { return true; }
void unload_cookie() {}
DALA_NIF(cookie_from_env) {
  (void)argc;
  (void)argv;
  return raise_exception(env, atoms.runtime_error, "not implemented");
}
}  // namespace dala::nif
