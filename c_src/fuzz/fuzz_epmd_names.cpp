// libFuzzer target: parse_names (the NAMES reply) on arbitrary bytes.
//
// Invariants:
//   - no crash, no read outside the input (ASan), no UB (UBSan);
//   - Complete only at EOF; every name is 1..kMaxNameBytes bytes of name bytes, the names fit in
//     the input, and printing the reply back gives exactly the input (the format has one
//     spelling per reply, so a lenient parse would show up here);
//   - before EOF a prefix of a well-formed reply is never Bad, and once Bad, more bytes never
//     make it good.
#include <cstddef>
#include <cstdint>
#include <string>

#include "epmd_proto.h"
#include "fuzz_check.h"

using dala::epmd::NamesResult;
using dala::epmd::ParseStatus;

namespace {

std::string print(const dala::epmd::NamesReply& r) {
  std::string out;
  out.push_back(static_cast<char>((r.epmd_port >> 24) & 0xff));
  out.push_back(static_cast<char>((r.epmd_port >> 16) & 0xff));
  out.push_back(static_cast<char>((r.epmd_port >> 8) & 0xff));
  out.push_back(static_cast<char>(r.epmd_port & 0xff));
  for (const auto& e : r.names)
    out += "name " + e.name + " at port " + std::to_string(e.port) + "\n";
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const NamesResult at_eof = dala::epmd::parse_names(data, size, true);
  const NamesResult open = dala::epmd::parse_names(data, size, false);

  // Without EOF nothing is complete; EOF can only turn Incomplete into Complete or Bad.
  FUZZ_CHECK(open.status != ParseStatus::Complete);
  if (open.status == ParseStatus::Bad) FUZZ_CHECK(at_eof.status == ParseStatus::Bad);

  if (at_eof.status == ParseStatus::Complete) {
    FUZZ_CHECK(size >= 4);
    FUZZ_CHECK(open.status == ParseStatus::Incomplete);
    size_t total = 4;
    for (const auto& e : at_eof.reply.names) {
      FUZZ_CHECK(!e.name.empty() && e.name.size() <= dala::epmd::kMaxNameBytes);
      for (char c : e.name) {
        const auto b = static_cast<uint8_t>(c);
        FUZZ_CHECK(b > 0x20 && b != 0x7f);
      }
      total += e.name.size();
    }
    FUZZ_CHECK(total <= size);
    FUZZ_CHECK(print(at_eof.reply) == std::string(reinterpret_cast<const char*>(data), size));
    // Every proper prefix of a complete reply is a valid prefix: Incomplete before EOF.
    const size_t step = size <= 512 ? 1 : size / 256;
    for (size_t n = 0; n < size; n += step) {
      FUZZ_CHECK(dala::epmd::parse_names(data, n, false).status == ParseStatus::Incomplete);
    }
  }

  // Once Bad, always Bad: check the halfway prefix (a full scan is quadratic).
  if (size > 1 && dala::epmd::parse_names(data, size / 2, false).status == ParseStatus::Bad) {
    FUZZ_CHECK(open.status == ParseStatus::Bad);
  }
  return 0;
}
