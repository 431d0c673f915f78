// Node identity NIFs: thin wrappers over the core's node_name.h. Both are
// short, bounded computations (inputs are atom texts and a suffix whose
// length is checked before any copy), so they run on a normal scheduler.
#include "nif_util.h"
#include "node_name.h"

namespace dala::nif {

// apply_suffix(BaseBin, SuffixBin) -> Bin, raising ArgumentError for a bad
// base or a suffix that makes the node too long.
DALA_NIF(apply_suffix) {
  (void)argc;
  return guard(env, [&] {
    const std::string_view base = get_binary(env, argv[0], "base_node");
    const std::string_view suffix = get_binary(env, argv[1], "suffix");
    return make_binary(env, dala::apply_suffix(base, suffix));
  });
}

// validate_node(Bin) -> ok, raising ArgumentError naming what is wrong.
DALA_NIF(validate_node) {
  (void)argc;
  return guard(env, [&] {
    dala::validate_node(get_binary(env, argv[0], "node"));
    return atoms.ok;
  });
}

}  // namespace dala::nif
