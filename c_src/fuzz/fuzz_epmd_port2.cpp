// libFuzzer target: parse_port2_resp (the PORT2_RESP reply) on arbitrary bytes, and
// encode_port_please2_req on the same bytes as a name.
//
// Invariants:
//   - no crash, no read outside the input (ASan), no UB (UBSan);
//   - a Complete reply accounts for exactly the input: re-encoding it gives the input back, and
//     its name and extra fit in it; a registered reply has a 1..kMaxNameBytes name;
//   - every proper prefix of a Complete reply is Incomplete, and a Bad prefix stays Bad;
//   - encoding a name either throws std::invalid_argument with a short message or frames it:
//     2-byte length, opcode 122, the name.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "epmd_proto.h"
#include "fuzz_check.h"

using dala::epmd::ParseStatus;
using dala::epmd::Port2Reply;

namespace {

void put16(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

std::string encode(const Port2Reply& r) {
  std::string out;
  out.push_back(static_cast<char>(dala::epmd::kPort2Resp));
  out.push_back(static_cast<char>(r.result));
  if (!r.registered) return out;
  put16(out, r.port);
  out.push_back(static_cast<char>(r.node_type));
  out.push_back(static_cast<char>(r.protocol));
  put16(out, r.highest_version);
  put16(out, r.lowest_version);
  put16(out, static_cast<uint32_t>(r.name.size()));
  out += r.name;
  put16(out, static_cast<uint32_t>(r.extra.size()));
  out += r.extra;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto r = dala::epmd::parse_port2_resp(data, size);
  const std::string input(reinterpret_cast<const char*>(data), size);

  if (r.status == ParseStatus::Complete) {
    FUZZ_CHECK(r.reply.registered == (r.reply.result == 0));
    FUZZ_CHECK(r.reply.name.size() + r.reply.extra.size() <= size);
    if (r.reply.registered) {
      FUZZ_CHECK(!r.reply.name.empty() && r.reply.name.size() <= dala::epmd::kMaxNameBytes);
    }
    FUZZ_CHECK(encode(r.reply) == input);
    for (size_t n = 0; n < size; ++n) {
      FUZZ_CHECK(dala::epmd::parse_port2_resp(data, n).status == ParseStatus::Incomplete);
    }
  } else if (r.status == ParseStatus::Incomplete) {
    // Incomplete means a prefix of some valid reply: at most the longest one.
    FUZZ_CHECK(size < 12 + dala::epmd::kMaxNameBytes + 2 + 65535);
  }
  if (size > 1 && dala::epmd::parse_port2_resp(data, size / 2).status == ParseStatus::Bad) {
    FUZZ_CHECK(r.status == ParseStatus::Bad);
  }

  try {
    const auto req = dala::epmd::encode_port_please2_req(input);
    FUZZ_CHECK(!input.empty() && input.size() <= dala::epmd::kMaxNameBytes);
    FUZZ_CHECK(req.size() == 3 + size);
    FUZZ_CHECK(((static_cast<size_t>(req[0]) << 8) | req[1]) == 1 + size);
    FUZZ_CHECK(req[2] == dala::epmd::kPortPlease2Req);
    FUZZ_CHECK(std::string(req.begin() + 3, req.end()) == input);
  } catch (const std::invalid_argument& e) {
    dala::fuzz::check_message(e);
    FUZZ_CHECK(input.empty() || input.size() > dala::epmd::kMaxNameBytes);
  }
  return 0;
}
