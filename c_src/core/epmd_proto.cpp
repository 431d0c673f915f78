#include "epmd_proto.h"

#include <stdexcept>

namespace dala::epmd {

namespace {

std::vector<uint8_t> frame(uint8_t opcode, std::string_view body) {
  const size_t n = 1 + body.size();  // callers keep n far below 65535
  std::vector<uint8_t> out;
  out.reserve(2 + n);
  out.push_back(static_cast<uint8_t>((n >> 8) & 0xff));
  out.push_back(static_cast<uint8_t>(n & 0xff));
  out.push_back(opcode);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// A byte allowed in a node name as EPMD lists it: printable, not a space (the line format uses
// spaces as separators); bytes >= 0x80 are UTF-8.
bool name_byte(uint8_t c) { return c > 0x20 && c != 0x7f; }

// The verdict on one NAMES line without its '\n' (or on the partial last line when `partial`).
// Complete: fills *entry. Incomplete: only possible when `partial` and the bytes are a prefix
// of a valid line.
ParseStatus parse_line(const uint8_t* p, size_t n, bool partial, NodeEntry* entry) {
  static constexpr std::string_view kName = "name ";
  static constexpr std::string_view kAtPort = " at port ";
  size_t i = 0;
  // "name "
  for (; i < kName.size(); ++i) {
    if (i == n) return partial ? ParseStatus::Incomplete : ParseStatus::Bad;
    if (p[i] != static_cast<uint8_t>(kName[i])) return ParseStatus::Bad;
  }
  // <n>
  const size_t name_start = i;
  while (i < n && name_byte(p[i])) {
    if (i - name_start == kMaxNameBytes) return ParseStatus::Bad;
    ++i;
  }
  const size_t name_len = i - name_start;
  if (i == n) return partial ? ParseStatus::Incomplete : ParseStatus::Bad;
  if (name_len == 0) return ParseStatus::Bad;
  // " at port "
  for (size_t k = 0; k < kAtPort.size(); ++k, ++i) {
    if (i == n) return partial ? ParseStatus::Incomplete : ParseStatus::Bad;
    if (p[i] != static_cast<uint8_t>(kAtPort[k])) return ParseStatus::Bad;
  }
  // <p>: 1..5 digits, no leading zero, <= 65535
  const size_t digits_start = i;
  uint32_t port = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < '0' || c > '9') return ParseStatus::Bad;
    if (i > digits_start && p[digits_start] == '0') return ParseStatus::Bad;
    if (i - digits_start == 5) return ParseStatus::Bad;
    port = port * 10 + static_cast<uint32_t>(c - '0');
    if (port > 65535) return ParseStatus::Bad;
    ++i;
  }
  if (partial) return ParseStatus::Incomplete;
  if (i == digits_start) return ParseStatus::Bad;
  entry->name.assign(reinterpret_cast<const char*>(p + name_start), name_len);
  entry->port = static_cast<uint16_t>(port);
  return ParseStatus::Complete;
}

}  // namespace

std::vector<uint8_t> encode_names_req() { return frame(kNamesReq, {}); }

std::vector<uint8_t> encode_kill_req() { return frame(kKillReq, {}); }

std::vector<uint8_t> encode_port_please2_req(std::string_view name) {
  if (name.empty()) throw std::invalid_argument("name must not be empty");
  if (name.size() > kMaxNameBytes) {
    throw std::invalid_argument("name must be at most " + std::to_string(kMaxNameBytes) +
                                " bytes, got " + std::to_string(name.size()));
  }
  return frame(kPortPlease2Req, name);
}

ParseStatus NamesParser::feed(const uint8_t* data, size_t len) {
  if (status_ == ParseStatus::Bad) return status_;
  if (data == nullptr && len != 0) return status_ = ParseStatus::Bad;
  if (len > kMaxReplyBytes - total_) return status_ = ParseStatus::Bad;
  total_ += len;
  size_t i = 0;
  if (!have_port_) {
    while (i < len && pending_.size() < 4) pending_.push_back(data[i++]);
    if (pending_.size() < 4) return status_;
    reply_.epmd_port =
        (static_cast<uint32_t>(pending_[0]) << 24) | (static_cast<uint32_t>(pending_[1]) << 16) |
        (static_cast<uint32_t>(pending_[2]) << 8) | static_cast<uint32_t>(pending_[3]);
    have_port_ = true;
    pending_.clear();
  }
  while (i < len) {
    size_t end = i;
    while (end < len && data[end] != '\n') ++end;
    pending_.insert(pending_.end(), data + i, data + end);
    if (pending_.size() > kMaxNamesLineBytes) return status_ = ParseStatus::Bad;
    if (end == len) break;  // a partial line: checked below
    NodeEntry entry;
    if (parse_line(pending_.data(), pending_.size(), false, &entry) != ParseStatus::Complete) {
      return status_ = ParseStatus::Bad;
    }
    reply_.names.push_back(std::move(entry));
    pending_.clear();
    i = end + 1;
  }
  // A partial line that can no longer become a line is Bad now, not at EOF.
  if (!pending_.empty()) {
    NodeEntry unused;
    if (parse_line(pending_.data(), pending_.size(), true, &unused) == ParseStatus::Bad) {
      return status_ = ParseStatus::Bad;
    }
  }
  return status_;
}

ParseStatus NamesParser::finish() {
  if (status_ == ParseStatus::Bad) return status_;
  // A cut-short header or last line: the peer closed mid-reply.
  if (!have_port_ || !pending_.empty()) return ParseStatus::Incomplete;
  return status_ = ParseStatus::Complete;
}

NamesResult parse_names(const uint8_t* data, size_t len, bool at_eof) {
  NamesParser parser;
  ParseStatus s = parser.feed(data, len);
  if (s == ParseStatus::Bad) return {ParseStatus::Bad, {}};
  if (!at_eof) return {ParseStatus::Incomplete, {}};
  s = parser.finish();
  if (s != ParseStatus::Complete) return {s, {}};
  return {ParseStatus::Complete, std::move(parser.reply())};
}

Port2Result parse_port2_resp(const uint8_t* data, size_t len) {
  Port2Result r;
  if (data == nullptr && len != 0) return {ParseStatus::Bad, {}};
  if (len == 0) return r;
  if (data[0] != kPort2Resp) return {ParseStatus::Bad, {}};
  if (len < 2) return r;
  Port2Reply reply;
  reply.result = data[1];
  if (reply.result != 0) {
    if (len > 2) return {ParseStatus::Bad, {}};
    reply.registered = false;
    return {ParseStatus::Complete, std::move(reply)};
  }
  // Fixed part: result(2) port(2) type(1) proto(1) high(2) low(2) nlen(2) = 12 bytes.
  if (len < 12) return r;
  reply.registered = true;
  reply.port = be16(data + 2);
  reply.node_type = data[4];
  reply.protocol = data[5];
  reply.highest_version = be16(data + 6);
  reply.lowest_version = be16(data + 8);
  const size_t nlen = be16(data + 10);
  if (nlen == 0 || nlen > kMaxNameBytes) return {ParseStatus::Bad, {}};
  size_t pos = 12;
  if (len - pos < nlen) return r;
  reply.name.assign(reinterpret_cast<const char*>(data + pos), nlen);
  pos += nlen;
  if (len - pos < 2) return r;
  const size_t elen = be16(data + pos);
  pos += 2;
  if (len - pos < elen) return r;
  reply.extra.assign(reinterpret_cast<const char*>(data + pos), elen);
  pos += elen;
  if (pos != len) return {ParseStatus::Bad, {}};
  return {ParseStatus::Complete, std::move(reply)};
}

KillResult parse_kill_resp(const uint8_t* data, size_t len) {
  if (data == nullptr && len != 0) return {ParseStatus::Bad, false};
  if (len == 0) return {ParseStatus::Incomplete, false};
  if (data[0] != 'O' && data[0] != 'N') return {ParseStatus::Bad, false};
  if (len == 1) return {ParseStatus::Incomplete, false};
  if (len > 2) return {ParseStatus::Bad, false};
  if (data[0] == 'O' && data[1] == 'K') return {ParseStatus::Complete, true};
  if (data[0] == 'N' && data[1] == 'O') return {ParseStatus::Complete, false};
  return {ParseStatus::Bad, false};
}

}  // namespace dala::epmd
