#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "node_name.h"

namespace {

// The message of the std::invalid_argument `f` throws; fails the test if it
// throws nothing or something else.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  FAIL("expected std::invalid_argument");
  return {};
}

struct Case {
  std::string input;
  std::string expected;
};

}  // namespace

TEST_CASE("trim_ascii_whitespace removes ASCII whitespace at both ends only", "[node_name]") {
  const std::vector<Case> table = {
      {"", ""},
      {"   ", ""},
      {" \t\n\v\f\r", ""},
      {"zy22cr", "zy22cr"},
      {"  zy22cr\n", "zy22cr"},
      {"\tzy 22\tcr\r\n", "zy 22\tcr"},
      {"a", "a"},
      {" a ", "a"},
      // Not ASCII whitespace: NUL, U+00A0 (C2 A0), U+3000 (E3 80 80) stay.
      {std::string("\0a", 2), std::string("\0a", 2)},
      {"\xC2\xA0x\xC2\xA0", "\xC2\xA0x\xC2\xA0"},
      {" \xE3\x80\x80 ", "\xE3\x80\x80"},
  };
  for (const auto& c : table) {
    INFO("input size " << c.input.size());
    REQUIRE(std::string(dala::trim_ascii_whitespace(c.input)) == c.expected);
  }
}

TEST_CASE("sanitize_suffix maps every byte outside [A-Za-z0-9_-] to '_'", "[node_name]") {
  const std::vector<Case> table = {
      {"", ""},
      {"zy22cr", "zy22cr"},
      {"ZY22CR", "ZY22CR"},
      {"emulator-5554", "emulator-5554"},
      {"a_b-c", "a_b-c"},
      {"192.168.1.20:5555", "192_168_1_20_5555"},
      {"a b", "a_b"},
      {"a@b", "a_b"},
      {"x/y\\z", "x_y_z"},
      {std::string("a\0b", 3), "a_b"},
      {"\x7F\xFF", "__"},
      {"caf\xC3\xA9", "caf__"},      // "café": one '_' per UTF-8 byte
      {"\xF0\x9F\x93\xB1", "____"},  // a 4-byte emoji
  };
  for (const auto& c : table) {
    INFO("expected " << c.expected);
    REQUIRE(dala::sanitize_suffix(c.input) == c.expected);
  }
  // All 256 byte values: exactly the 64 allowed ones survive.
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string out = dala::sanitize_suffix(all);
  REQUIRE(out.size() == 256);
  int kept = 0;
  for (int b = 0; b < 256; ++b) {
    if (out[static_cast<std::size_t>(b)] != '_') ++kept;
  }
  REQUIRE(kept == 26 + 26 + 10 + 1);  // '_' itself maps to '_' and is not counted
}

TEST_CASE("apply_suffix inserts the trimmed, sanitised suffix before the host", "[node_name]") {
  struct SuffixCase {
    std::string base, suffix, expected;
  };
  const std::vector<SuffixCase> table = {
      {"my_app@127.0.0.1", "zy22cr", "my_app_zy22cr@127.0.0.1"},
      {"my_app", "zy22cr", "my_app_zy22cr"},
      {"my_app@127.0.0.1", "emulator-5554", "my_app_emulator-5554@127.0.0.1"},
      {"my_app@127.0.0.1", "192.168.1.20:5555", "my_app_192_168_1_20_5555@127.0.0.1"},
      {"my_app", "192.168.1.20:5555", "my_app_192_168_1_20_5555"},
      {"my_app@127.0.0.1", "  zy22cr\n", "my_app_zy22cr@127.0.0.1"},
      {"my_app@127.0.0.1", " a b ", "my_app_a_b@127.0.0.1"},
      {"my_app@localhost", "x", "my_app_x@localhost"},
      {"test_nif_android@127.0.0.1", "zy22cr", "test_nif_android_zy22cr@127.0.0.1"},
      // No suffix: unchanged.
      {"my_app@127.0.0.1", "", "my_app@127.0.0.1"},
      {"my_app@127.0.0.1", "   ", "my_app@127.0.0.1"},
      {"my_app@127.0.0.1", " \t\r\n", "my_app@127.0.0.1"},
      {"my_app", "", "my_app"},
      // A host with Latin-1 characters (UTF-8 in the atom text) is kept as is.
      {"a@h\xC3\xA9te", "s", "a_s@h\xC3\xA9te"},
  };
  for (const auto& c : table) {
    INFO(c.base << " + '" << c.suffix << "'");
    REQUIRE(dala::apply_suffix(c.base, c.suffix) == c.expected);
  }
}

TEST_CASE("apply_suffix validates the base even when the suffix is empty", "[node_name]") {
  REQUIRE(error_of([] { dala::apply_suffix("my app@host", ""); }) ==
          "base_node name part must match [A-Za-z0-9_-]+, got invalid byte 0x20 at position 2");
  REQUIRE(error_of([] { dala::apply_suffix("", "x"); }) == "base_node must not be empty");
  REQUIRE(error_of([] { dala::apply_suffix("my_app@", "zy22cr"); }) ==
          "base_node host must not be empty");
  REQUIRE(error_of([] { dala::apply_suffix("@host", "  "); }) ==
          "base_node name part must not be empty");
}

TEST_CASE("apply_suffix limits the result to 255 characters", "[node_name]") {
  // "a@h" is 3 characters; "_" adds one, so a 251-byte suffix gives 255.
  REQUIRE(dala::apply_suffix("a@h", std::string(251, 's')).size() == 255);
  REQUIRE(error_of([] { dala::apply_suffix("a@h", std::string(252, 's')); }) ==
          "suffix is too long: 252 bytes after trimming would make the node 256 characters, at "
          "most 255 allowed");
  // Surrounding whitespace does not count.
  REQUIRE(dala::apply_suffix("a", "  " + std::string(253, 's') + "  ").size() == 255);

  // A 1 MB suffix: rejected with its size, not echoed.
  const std::string huge(1 << 20, 'x');
  const std::string msg = error_of([&] { dala::apply_suffix("my_app@127.0.0.1", huge); });
  REQUIRE(msg ==
          "suffix is too long: 1048576 bytes after trimming would make the node 1048593 "
          "characters, at most 255 allowed");
  REQUIRE(msg.size() < 200);
}

TEST_CASE("validate_node accepts valid names", "[node_name]") {
  const std::vector<std::string> valid = {
      "a",
      "my_app",
      "my_app@127.0.0.1",
      "emulator-5554@localhost",
      "A-Z_0-9@host.example.com",
      "n@!",                  // 0x21 is the lowest host character
      "n@h\xC3\xBF",          // U+00FF, the highest
      "n@[::1]",              // '[' ':' ']' are fine in a host
      "n@h\xFF",              // not UTF-8: read as Latin-1, 0xFF is U+00FF
      std::string(255, 'a'),  // 255 characters
      "a@" + std::string(253, 'h'),
      // 255 characters in 256 bytes: the 'é' counts once.
      "a@" + std::string(251, 'h') + "\xC3\xA9",
  };
  for (const auto& node : valid) {
    INFO("size " << node.size());
    REQUIRE_NOTHROW(dala::validate_node(node));
  }
}

TEST_CASE("validate_node rejects invalid names with a message naming the problem", "[node_name]") {
  const std::vector<Case> table = {
      {"", "node must not be empty"},
      {"@host", "node name part must not be empty"},
      {"my app", "node name part must match [A-Za-z0-9_-]+, got invalid byte 0x20 at position 2"},
      {"my.app@h", "node name part must match [A-Za-z0-9_-]+, got invalid byte 0x2E at position 2"},
      {"caf\xC3\xA9@h",
       "node name part must match [A-Za-z0-9_-]+, got invalid byte 0xC3 at position 3"},
      {std::string("a\0b", 3),
       "node name part must match [A-Za-z0-9_-]+, got invalid byte 0x00 at position 1"},
      {"my_app@", "node host must not be empty"},
      {"a@b@c", "node must contain at most one '@', got another at position 3"},
      {"a@@", "node must contain at most one '@', got another at position 2"},
      {"a@ho st",
       "node host must contain only characters U+0021..U+00FF, got U+0020 at position 4"},
      {"a@h\t", "node host must contain only characters U+0021..U+00FF, got U+0009 at position 3"},
      // Valid UTF-8 above U+00FF: net_kernel's "^[!-\xFF]*$" rejects it, so do we.
      {"a@h\xC4\x85",
       "node host must contain only characters U+0021..U+00FF, got U+0105 at position 3"},
      {"a@\xF0\x9F\x93\xB1",
       "node host must contain only characters U+0021..U+00FF, got U+1F4F1 at position 2"},
      // Not UTF-8 (a lone continuation byte elsewhere): bytes are Latin-1 characters.
      {"a@\x80h\x01",
       "node host must contain only characters U+0021..U+00FF, got U+0001 at position 4"},
      {std::string(256, 'a'), "node must be at most 255 characters, got 256"},
      {"a@" + std::string(254, 'h'), "node must be at most 255 characters, got 256"},
      // 256 characters in 257 bytes.
      {"a@" + std::string(253, 'h') + "\xC3\xA9", "node must be at most 255 characters, got 256"},
      // 256 bytes that are not UTF-8 count as 256 characters.
      {"a@" + std::string(253, 'h') + "\xC3", "node must be at most 255 characters, got 256"},
  };
  for (const auto& c : table) {
    INFO("expected: " << c.expected);
    REQUIRE(error_of([&] { dala::validate_node(c.input); }) == c.expected);
  }
}

TEST_CASE("validate_node names the argument it is given", "[node_name]") {
  REQUIRE(error_of([] { dala::validate_node("a b", "base_node"); }) ==
          "base_node name part must match [A-Za-z0-9_-]+, got invalid byte 0x20 at position 1");
}

TEST_CASE("validate_node never echoes a huge input", "[node_name]") {
  const std::string huge = "a@" + std::string(1 << 20, 'h');
  const std::string msg = error_of([&] { dala::validate_node(huge); });
  REQUIRE(msg == "node must be at most 255 characters, got 1048578");
}

TEST_CASE("node_length_chars counts code points of UTF-8 and bytes otherwise", "[node_name]") {
  REQUIRE(dala::node_length_chars("") == 0);
  REQUIRE(dala::node_length_chars("abc") == 3);
  REQUIRE(dala::node_length_chars("a@h\xC3\xA9") == 4);
  REQUIRE(dala::node_length_chars("\xF0\x9F\x93\xB1") == 1);
  REQUIRE(dala::node_length_chars("\xC3") == 1);              // truncated sequence
  REQUIRE(dala::node_length_chars("\xC0\x80") == 2);          // overlong NUL
  REQUIRE(dala::node_length_chars("\xED\xA0\x80") == 3);      // a surrogate
  REQUIRE(dala::node_length_chars("\xF4\x90\x80\x80") == 4);  // above U+10FFFF
}
