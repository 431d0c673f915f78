// The EPMD wire protocol as pure functions over bytes: no sockets, no clocks, no allocation
// beyond the results themselves.
//
// Every request is framed as a 2-byte big-endian length followed by that many bytes (the opcode
// and its body); EPMD answers once and closes the connection. The parsers take the bytes received
// so far and say whether they hold a complete reply, a valid prefix of one (Incomplete: read more)
// or something that can never become one (Bad). They never read outside [data, data + len) and
// bound every size they accept, so a hostile peer (or a fuzzer) can only ever get Bad.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dala::epmd {

// Opcodes, as in OTP's erts/epmd/src/epmd.h.
constexpr uint8_t kKillReq = 107;
constexpr uint8_t kNamesReq = 110;
constexpr uint8_t kPort2Resp = 119;
constexpr uint8_t kPortPlease2Req = 122;

// Bounds on what we accept. A node name is an atom's text: at most 255 characters, so at most
// 1020 bytes of UTF-8. A NAMES line is "name <n> at port <p>\n".
constexpr size_t kMaxNameBytes = 255 * 4;
constexpr size_t kMaxNamesLineBytes = 5 + kMaxNameBytes + 9 + 5 + 1;
// A NAMES reply from a daemon holding a few thousand nodes fits easily; anything larger is junk.
constexpr size_t kMaxReplyBytes = 256 * 1024;

enum class ParseStatus {
  Complete,    // a whole, well-formed reply
  Incomplete,  // a valid prefix: more bytes (or EOF, for NAMES) are needed
  Bad,         // can never become a valid reply
};

// Requests. encode_port_please2 throws std::invalid_argument naming `name` when the name is
// empty or longer than kMaxNameBytes.
std::vector<uint8_t> encode_names_req();
std::vector<uint8_t> encode_port_please2_req(std::string_view name);
std::vector<uint8_t> encode_kill_req();

struct NodeEntry {
  std::string name;
  uint16_t port = 0;
  bool operator==(const NodeEntry& o) const { return name == o.name && port == o.port; }
};

struct NamesReply {
  // The port EPMD says it listens on. Not necessarily the port we dialled (through a tunnel
  // they can differ), so callers must not insist on equality.
  uint32_t epmd_port = 0;
  std::vector<NodeEntry> names;
};

struct NamesResult {
  ParseStatus status = ParseStatus::Incomplete;
  NamesReply reply;  // filled only when status == Complete
};

// A NAMES reply is the 4-byte big-endian port, then zero or more "name <n> at port <p>\n" lines,
// then EOF; it has no length of its own, so it is Complete only when `at_eof` says the peer has
// closed. Before EOF the best answer is Incomplete (or Bad, as soon as garbage shows up).
// Names are 1..kMaxNameBytes bytes of printable non-space bytes (UTF-8 allowed); ports are
// 1..5 decimal digits without leading zeros (except "0"), at most 65535.
NamesResult parse_names(const uint8_t* data, size_t len, bool at_eof);

// The same parse, fed in pieces as they arrive: each byte is looked at a bounded number of
// times (complete lines are parsed once and dropped; only the current partial line is kept), so
// a reply of n bytes costs O(n) whatever its chunking. parse_names is this parser fed at once.
class NamesParser {
 public:
  // Adds the next `len` bytes. Bad as soon as the bytes so far can never be a NAMES reply (or
  // pass kMaxReplyBytes); Bad stays Bad. Otherwise Incomplete: a NAMES reply needs EOF.
  ParseStatus feed(const uint8_t* data, size_t len);
  // The peer closed: Complete (reply() holds the reply), Incomplete (the header or the last
  // line was cut short) or Bad.
  ParseStatus finish();
  // The names so far; the whole reply once finish() said Complete.
  NamesReply& reply() noexcept { return reply_; }

 private:
  ParseStatus status_ = ParseStatus::Incomplete;
  size_t total_ = 0;
  bool have_port_ = false;
  std::vector<uint8_t> pending_;  // the header so far, then the current line without its '\n'
  NamesReply reply_;
};

struct Port2Reply {
  bool registered = false;  // false: EPMD's result byte was non-zero (no such name)
  uint8_t result = 0;       // EPMD's result byte
  uint16_t port = 0;
  uint8_t node_type = 0;  // 77 ('M') for a normal node, 72 ('H') for a hidden one
  uint8_t protocol = 0;   // 0 = TCP/IPv4
  uint16_t highest_version = 0;
  uint16_t lowest_version = 0;
  std::string name;
  std::string extra;
};

struct Port2Result {
  ParseStatus status = ParseStatus::Incomplete;
  Port2Reply reply;  // filled only when status == Complete
};

// PORT2_RESP: 119, result byte; when the result is 0 (found) it goes on with port(2),
// node type(1), protocol(1), highest(2), lowest(2), name length(2), name, extra length(2), extra.
// Bytes after a complete reply make it Bad (EPMD sends one reply and closes).
Port2Result parse_port2_resp(const uint8_t* data, size_t len);

struct KillResult {
  ParseStatus status = ParseStatus::Incomplete;
  bool killed = false;  // "OK"; EPMD answers "NO" when it refuses (nodes still registered)
};

// KILL reply: exactly "OK" or "NO".
KillResult parse_kill_resp(const uint8_t* data, size_t len);

}  // namespace dala::epmd
