// PLACEHOLDER: replaced by the node identity work (issue 5).
#include "nif_util.h"
namespace dala::nif {
DALA_NIF(apply_suffix) {
  (void)argc;
  (void)argv;
  return raise_exception(env, atoms.runtime_error, "not implemented");
}
DALA_NIF(validate_node) {
  (void)argc;
  (void)argv;
  return raise_exception(env, atoms.runtime_error, "not implemented");
}
}  // namespace dala::nif
