#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "epmd_proto.h"

using namespace dala::epmd;

namespace {

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::string port_prefix(uint32_t port) {
  std::string s(4, '\0');
  s[0] = static_cast<char>((port >> 24) & 0xff);
  s[1] = static_cast<char>((port >> 16) & 0xff);
  s[2] = static_cast<char>((port >> 8) & 0xff);
  s[3] = static_cast<char>(port & 0xff);
  return s;
}

NamesResult names_of(const std::string& s, bool eof) {
  const auto b = bytes(s);
  return parse_names(b.data(), b.size(), eof);
}

std::string port2_found(uint16_t port, const std::string& name, const std::string& extra) {
  std::string s;
  s += static_cast<char>(kPort2Resp);
  s += '\0';
  s += static_cast<char>(port >> 8);
  s += static_cast<char>(port & 0xff);
  s += 'M';
  s += '\0';
  s += std::string("\0\6\0\5", 4);
  s += static_cast<char>(name.size() >> 8);
  s += static_cast<char>(name.size() & 0xff);
  s += name;
  s += static_cast<char>(extra.size() >> 8);
  s += static_cast<char>(extra.size() & 0xff);
  s += extra;
  return s;
}

}  // namespace

TEST_CASE("requests carry a 2-byte big-endian length, then the opcode", "[epmd_proto]") {
  REQUIRE(encode_names_req() == std::vector<uint8_t>{0, 1, 110});
  REQUIRE(encode_kill_req() == std::vector<uint8_t>{0, 1, 107});
  REQUIRE(encode_port_please2_req("foo") == std::vector<uint8_t>{0, 4, 122, 'f', 'o', 'o'});

  const std::string long_name(300, 'a');
  const auto req = encode_port_please2_req(long_name);
  REQUIRE(req.size() == 2 + 1 + 300);
  REQUIRE(req[0] == 0x01);  // 301 = 0x012d
  REQUIRE(req[1] == 0x2d);
  REQUIRE(req[2] == 122);
}

TEST_CASE("PORT_PLEASE2 names are bounded and non-empty", "[epmd_proto]") {
  REQUIRE_THROWS_WITH(encode_port_please2_req(""), "name must not be empty");
  REQUIRE_THROWS_AS(encode_port_please2_req(std::string(kMaxNameBytes + 1, 'a')),
                    std::invalid_argument);
  REQUIRE_THROWS_WITH(encode_port_please2_req(std::string(2000, 'a')),
                      "name must be at most 1020 bytes, got 2000");
  REQUIRE_NOTHROW(encode_port_please2_req(std::string(kMaxNameBytes, 'a')));
}

TEST_CASE("valid NAMES replies", "[epmd_proto]") {
  struct Case {
    std::string wire;
    uint32_t epmd_port;
    std::vector<NodeEntry> names;
  };
  const std::vector<Case> cases = {
      {port_prefix(4369), 4369, {}},
      {port_prefix(4369) + "name foo at port 40000\n", 4369, {{"foo", 40000}}},
      {port_prefix(51234) + "name a at port 1\nname b_2-x at port 65535\n",
       51234,
       {{"a", 1}, {"b_2-x", 65535}}},
      {port_prefix(0) + "name z at port 0\n", 0, {{"z", 0}}},
      {port_prefix(4369) + "name \xc3\xa5sa at port 123\n", 4369, {{"\xc3\xa5sa", 123}}},
      {port_prefix(4369) + "name " + std::string(kMaxNameBytes, 'n') + " at port 9\n",
       4369,
       {{std::string(kMaxNameBytes, 'n'), 9}}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.wire);
    const auto r = names_of(c.wire, true);
    REQUIRE(r.status == ParseStatus::Complete);
    REQUIRE(r.reply.epmd_port == c.epmd_port);
    REQUIRE(r.reply.names == c.names);
    // The same bytes before EOF are only a prefix: NAMES has no length of its own.
    REQUIRE(names_of(c.wire, false).status == ParseStatus::Incomplete);
  }
}

TEST_CASE("a NAMES reply truncated at any length is incomplete, never complete", "[epmd_proto]") {
  const std::string wire =
      port_prefix(4369) + "name foo at port 40000\nname bar_baz at port 51515\n";
  for (size_t n = 0; n < wire.size(); ++n) {
    CAPTURE(n);
    const auto cut = wire.substr(0, n);
    const bool on_line_boundary = n == 4 || n == wire.find('\n') + 1;
    const auto at_eof = names_of(cut, true);
    if (on_line_boundary) {
      REQUIRE(at_eof.status == ParseStatus::Complete);  // fewer lines, but a whole reply
    } else {
      REQUIRE(at_eof.status == ParseStatus::Incomplete);
    }
    REQUIRE(names_of(cut, false).status == ParseStatus::Incomplete);
  }
  REQUIRE(names_of(wire, true).reply.names.size() == 2);
}

TEST_CASE("garbage, bad numbers and oversize lines make a NAMES reply bad", "[epmd_proto]") {
  const std::string p = port_prefix(4369);
  const std::vector<std::string> bad = {
      p + "\n",
      p + "nam foo at port 1\n",
      p + "NAME foo at port 1\n",
      p + "name  at port 1\n",
      p + "name foo at port \n",
      p + "name foo at port x\n",
      p + "name foo at port 65536\n",
      p + "name foo at port 123456\n",
      p + "name foo at port 01\n",
      p + "name foo at port -1\n",
      p + "name foo at port 1 \n",
      p + "name foo  at port 1\n",
      p + "name foo at  port 1\n",
      p + "name foo\tat port 1\n",
      p + "name fo\x01o at port 1\n",
      p + "name foo at port 1\nHTTP/1.1 400 Bad Request\r\n",
      p + "name foo at port 1\r\n",
      p + "name " + std::string(kMaxNameBytes + 1, 'n') + " at port 9\n",
      p + "name " + std::string(kMaxNamesLineBytes + 10, 'n'),  // no newline yet: still bad
      "HTTP/1.1 200 OK\r\n\r\n",
  };
  for (const auto& wire : bad) {
    CAPTURE(wire.substr(0, 80));
    REQUIRE(names_of(wire, true).status == ParseStatus::Bad);
    REQUIRE(names_of(wire, false).status == ParseStatus::Bad);
  }
}

TEST_CASE("a NAMES reply larger than the cap is bad", "[epmd_proto]") {
  std::string wire = port_prefix(4369);
  while (wire.size() <= kMaxReplyBytes) wire += "name node at port 1234\n";
  REQUIRE(names_of(wire, true).status == ParseStatus::Bad);
}

TEST_CASE("NamesParser fed in any chunking agrees with a whole parse", "[epmd_proto]") {
  std::string reply = port_prefix(4369);
  for (int i = 0; i < 50; ++i) {
    reply += "name node" + std::to_string(i) + " at port " + std::to_string(9000 + i) + "\n";
  }
  const auto b = bytes(reply);
  for (size_t chunk : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{64}, b.size()}) {
    NamesParser p;
    for (size_t at = 0; at < b.size(); at += chunk) {
      const size_t n = std::min(chunk, b.size() - at);
      REQUIRE(p.feed(b.data() + at, n) == ParseStatus::Incomplete);
    }
    REQUIRE(p.finish() == ParseStatus::Complete);
    REQUIRE(p.reply().epmd_port == 4369);
    REQUIRE(p.reply().names.size() == 50);
    REQUIRE(p.reply().names[49] == NodeEntry{"node49", 9049});
  }
}

TEST_CASE("NamesParser says Bad at the first bad byte and stays Bad", "[epmd_proto]") {
  const auto good = bytes(port_prefix(4369) + "name a at port 1\n");
  NamesParser p;
  REQUIRE(p.feed(good.data(), good.size()) == ParseStatus::Incomplete);
  const auto bad = bytes("nAme");
  REQUIRE(p.feed(bad.data(), bad.size()) == ParseStatus::Bad);
  REQUIRE(p.feed(good.data() + 4, good.size() - 4) == ParseStatus::Bad);
  REQUIRE(p.finish() == ParseStatus::Bad);
}

TEST_CASE("NamesParser: a cut-short header or last line at EOF is incomplete", "[epmd_proto]") {
  const auto head = bytes(port_prefix(4369).substr(0, 3));
  NamesParser short_head;
  REQUIRE(short_head.feed(head.data(), head.size()) == ParseStatus::Incomplete);
  REQUIRE(short_head.finish() == ParseStatus::Incomplete);

  const auto cut = bytes(port_prefix(4369) + "name a at po");
  NamesParser cut_line;
  REQUIRE(cut_line.feed(cut.data(), cut.size()) == ParseStatus::Incomplete);
  REQUIRE(cut_line.finish() == ParseStatus::Incomplete);
}

TEST_CASE("NamesParser: an endless line is Bad once it passes the line bound", "[epmd_proto]") {
  NamesParser p;
  const auto head = bytes(port_prefix(4369) + "name ");
  REQUIRE(p.feed(head.data(), head.size()) == ParseStatus::Incomplete);
  const std::vector<uint8_t> a(100, 'a');
  ParseStatus s = ParseStatus::Incomplete;
  size_t fed = 0;
  while (s == ParseStatus::Incomplete && fed < 4 * kMaxNamesLineBytes) {
    s = p.feed(a.data(), a.size());
    fed += a.size();
  }
  REQUIRE(s == ParseStatus::Bad);
  REQUIRE(fed <= kMaxNamesLineBytes + a.size());
}

TEST_CASE("NamesParser: more than kMaxReplyBytes in total is Bad", "[epmd_proto]") {
  NamesParser p;
  std::string reply = port_prefix(4369);
  const std::string line = "name n at port 1\n";
  const auto head = bytes(reply);
  REQUIRE(p.feed(head.data(), head.size()) == ParseStatus::Incomplete);
  const auto l = bytes(line);
  size_t total = head.size();
  ParseStatus s = ParseStatus::Incomplete;
  while (s == ParseStatus::Incomplete) {
    s = p.feed(l.data(), l.size());
    total += l.size();
  }
  REQUIRE(s == ParseStatus::Bad);
  REQUIRE(total > kMaxReplyBytes);
}

TEST_CASE("null or empty input never reads out of bounds", "[epmd_proto]") {
  REQUIRE(parse_names(nullptr, 0, true).status == ParseStatus::Incomplete);
  REQUIRE(parse_names(nullptr, 5, true).status == ParseStatus::Bad);
  REQUIRE(parse_port2_resp(nullptr, 0).status == ParseStatus::Incomplete);
  REQUIRE(parse_port2_resp(nullptr, 3).status == ParseStatus::Bad);
  REQUIRE(parse_kill_resp(nullptr, 0).status == ParseStatus::Incomplete);
  REQUIRE(parse_kill_resp(nullptr, 1).status == ParseStatus::Bad);
}

TEST_CASE("PORT2_RESP found and not found", "[epmd_proto]") {
  const auto found = bytes(port2_found(40123, "foo", "xy"));
  const auto r = parse_port2_resp(found.data(), found.size());
  REQUIRE(r.status == ParseStatus::Complete);
  REQUIRE(r.reply.registered);
  REQUIRE(r.reply.port == 40123);
  REQUIRE(r.reply.node_type == 'M');
  REQUIRE(r.reply.protocol == 0);
  REQUIRE(r.reply.highest_version == 6);
  REQUIRE(r.reply.lowest_version == 5);
  REQUIRE(r.reply.name == "foo");
  REQUIRE(r.reply.extra == "xy");

  for (uint8_t result : {uint8_t{1}, uint8_t{2}, uint8_t{255}}) {
    const std::vector<uint8_t> nf = {kPort2Resp, result};
    const auto n = parse_port2_resp(nf.data(), nf.size());
    REQUIRE(n.status == ParseStatus::Complete);
    REQUIRE_FALSE(n.reply.registered);
    REQUIRE(n.reply.result == result);
  }
}

TEST_CASE("PORT2_RESP truncated at every length is incomplete", "[epmd_proto]") {
  for (const auto& wire : {port2_found(40123, "foo", "xy"), port2_found(1, "n", "")}) {
    const auto b = bytes(wire);
    for (size_t n = 0; n < b.size(); ++n) {
      CAPTURE(n);
      REQUIRE(parse_port2_resp(b.data(), n).status == ParseStatus::Incomplete);
    }
    REQUIRE(parse_port2_resp(b.data(), b.size()).status == ParseStatus::Complete);
  }
  const std::vector<uint8_t> one = {kPort2Resp};
  REQUIRE(parse_port2_resp(one.data(), one.size()).status == ParseStatus::Incomplete);
}

TEST_CASE("PORT2_RESP with a wrong opcode, bad lengths or trailing bytes is bad", "[epmd_proto]") {
  const std::vector<std::vector<uint8_t>> bad = {
      {kNamesReq, 0},
      {0, 0, 0, 0},
      {'H', 'T', 'T', 'P'},
      {kPort2Resp, 1, 0},                                           // not found, then more
      {kPort2Resp, 0, 0x9c, 0x7b, 'M', 0, 0, 6, 0, 5, 0, 0},        // empty name
      {kPort2Resp, 0, 0x9c, 0x7b, 'M', 0, 0, 6, 0, 5, 0xff, 0xff},  // oversize name
  };
  for (const auto& b : bad) {
    REQUIRE(parse_port2_resp(b.data(), b.size()).status == ParseStatus::Bad);
  }
  auto trailing = bytes(port2_found(40123, "foo", "xy") + "!");
  REQUIRE(parse_port2_resp(trailing.data(), trailing.size()).status == ParseStatus::Bad);
}

TEST_CASE("KILL replies", "[epmd_proto]") {
  struct Case {
    std::string wire;
    ParseStatus status;
    bool killed;
  };
  const std::vector<Case> cases = {
      {"OK", ParseStatus::Complete, true},
      {"NO", ParseStatus::Complete, false},
      {"", ParseStatus::Incomplete, false},
      {"O", ParseStatus::Incomplete, false},
      {"N", ParseStatus::Incomplete, false},
      {"OK!", ParseStatus::Bad, false},
      {"ok", ParseStatus::Bad, false},
      {"ON", ParseStatus::Bad, false},
      {"X", ParseStatus::Bad, false},
      {std::string(1, char(kPort2Resp)), ParseStatus::Bad, false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.wire);
    const auto b = bytes(c.wire);
    const auto r = parse_kill_resp(b.data(), b.size());
    REQUIRE(r.status == c.status);
    REQUIRE(r.killed == c.killed);
  }
}
