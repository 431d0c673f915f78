// Another static library's symbols in the same binary as the static NIF: a libsodium entry point
// and names of dala's own internals, defined here with other meanings. If dala_dist_nif.a left
// any of them global, linking cross/static_harness would fail with a duplicate definition (or
// the NIF would call these instead of its own); the harness checks both calls go where they
// belong. Test code only.
namespace dala::nif {
// The same mangled name as the adapter's atom table.
int atoms = 7;
}  // namespace dala::nif

namespace dala {
// The same mangled name as the core's platform_name.
enum class Platform { Android, Ios, Host };
const char* platform_name(Platform) noexcept { return "neighbour"; }
}  // namespace dala

extern "C" {
// The app's (or another NIF's) own libsodium.
int sodium_init(void) { return 42; }
}
