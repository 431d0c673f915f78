// PLACEHOLDER: replaced by the EPMD gate work (issue 4).
#include "nif_util.h"
namespace dala::nif {
bool load_gate(ErlNifEnv*, const char**) { return true; }
#define DALA_TODO(name)                                                  \
  DALA_NIF(name) {                                                       \
    (void)argc;                                                          \
    (void)argv;                                                          \
    return raise_exception(env, atoms.runtime_error, "not implemented"); \
  }
DALA_TODO(epmd_names)
DALA_TODO(epmd_port_please)
DALA_TODO(epmd_kill)
DALA_TODO(gate_new)
DALA_TODO(gate_wait)
DALA_TODO(gate_cancel)
}  // namespace dala::nif
