// libFuzzer target: parse_kill_resp (the KILL reply) on arbitrary bytes.
//
// Invariants: no crash or out-of-bounds read; Complete exactly for "OK" (killed) and "NO" (not
// killed); Incomplete exactly for the empty input, "O" and "N"; everything else Bad.
#include <cstddef>
#include <cstdint>
#include <string>

#include "epmd_proto.h"
#include "fuzz_check.h"

using dala::epmd::ParseStatus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto r = dala::epmd::parse_kill_resp(data, size);
  const std::string s(reinterpret_cast<const char*>(data), size);
  if (s == "OK") {
    FUZZ_CHECK(r.status == ParseStatus::Complete && r.killed);
  } else if (s == "NO") {
    FUZZ_CHECK(r.status == ParseStatus::Complete && !r.killed);
  } else if (s.empty() || s == "O" || s == "N") {
    FUZZ_CHECK(r.status == ParseStatus::Incomplete && !r.killed);
  } else {
    FUZZ_CHECK(r.status == ParseStatus::Bad && !r.killed);
  }
  return 0;
}
