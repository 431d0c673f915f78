#include <catch2/catch.hpp>
#include <cstdint>
#include <string_view>

#include "utf8.h"

using dala::utf8::decode;
using dala::utf8::is_valid;

TEST_CASE("UTF-8 validation accepts the edges of every range", "[utf8]") {
  CHECK(is_valid(""));
  CHECK(is_valid("\x7f"));
  CHECK(is_valid("\xc2\x80"));          // U+0080
  CHECK(is_valid("\xdf\xbf"));          // U+07FF
  CHECK(is_valid("\xe0\xa0\x80"));      // U+0800
  CHECK(is_valid("\xed\x9f\xbf"));      // U+D7FF
  CHECK(is_valid("\xee\x80\x80"));      // U+E000
  CHECK(is_valid("\xef\xbf\xbf"));      // U+FFFF
  CHECK(is_valid("\xf0\x90\x80\x80"));  // U+10000
  CHECK(is_valid("\xf4\x8f\xbf\xbf"));  // U+10FFFF
}

TEST_CASE("UTF-8 validation refuses overlongs, surrogates, big values and broken sequences",
          "[utf8]") {
  CHECK_FALSE(is_valid("\xc0\x80"));          // overlong NUL
  CHECK_FALSE(is_valid("\xc1\xbf"));          // overlong U+007F
  CHECK_FALSE(is_valid("\xe0\x9f\xbf"));      // overlong U+07FF
  CHECK_FALSE(is_valid("\xf0\x8f\xbf\xbf"));  // overlong U+FFFF
  CHECK_FALSE(is_valid("\xed\xa0\x80"));      // U+D800
  CHECK_FALSE(is_valid("\xed\xbf\xbf"));      // U+DFFF
  CHECK_FALSE(is_valid("\xf4\x90\x80\x80"));  // U+110000
  CHECK_FALSE(is_valid("\xf8\x88\x80\x80\x80"));
  CHECK_FALSE(is_valid("\x80"));          // stray continuation
  CHECK_FALSE(is_valid("a\xc3"));         // truncated at the end
  CHECK_FALSE(is_valid("\xe2\x82"));      // truncated 3-byte sequence
  CHECK_FALSE(is_valid("\xe2\x28\xa1"));  // bad continuation
}

TEST_CASE("decode returns the code point and its length", "[utf8]") {
  struct Case {
    std::string_view s;
    std::uint32_t cp;
    std::size_t len;
  };
  const Case cases[] = {{"A", 0x41, 1},
                        {"\xc3\xbf", 0xFF, 2},
                        {"\xe2\x82\xac", 0x20AC, 3},
                        {"\xf0\x9f\x98\x80", 0x1F600, 4}};
  for (const auto& c : cases) {
    std::uint32_t cp = 0;
    std::size_t len = 0;
    REQUIRE(decode(c.s, 0, &cp, &len));
    CHECK(cp == c.cp);
    CHECK(len == c.len);
  }
  std::uint32_t cp = 7;
  std::size_t len = 9;
  CHECK_FALSE(decode("x\xff", 1, &cp, &len));
  CHECK(cp == 7);  // left alone on failure
  CHECK(len == 9);
}
