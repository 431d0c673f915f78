#include <sodium.h>

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "hkdf.h"

namespace {

std::string from_hex(const std::string& hex) {
  std::string out(hex.size() / 2, '\0');
  size_t len = 0;
  REQUIRE(sodium_hex2bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), hex.c_str(),
                         hex.size(), nullptr, &len, nullptr) == 0);
  REQUIRE(len == out.size());
  return out;
}

std::string to_hex(const unsigned char* bytes, size_t len) {
  std::string out(len * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), bytes, len);
  out.pop_back();
  return out;
}

std::string range_bytes(int from, int to) {  // from..to-1
  std::string out;
  for (int b = from; b < to; ++b) out.push_back(static_cast<char>(b));
  return out;
}

struct Rfc5869Case {
  const char* name;
  std::string ikm, salt, info;
  size_t length;
  const char* prk;
  const char* okm;
};

}  // namespace

TEST_CASE("RFC 5869 SHA-256 test cases 1-3", "[hkdf]") {
  REQUIRE(sodium_init() >= 0);
  const std::vector<Rfc5869Case> cases = {
      {"A.1 basic", std::string(22, '\x0b'), from_hex("000102030405060708090a0b0c"),
       from_hex("f0f1f2f3f4f5f6f7f8f9"), 42,
       "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
       "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
      {"A.2 longer inputs and outputs", range_bytes(0x00, 0x50), range_bytes(0x60, 0xb0),
       range_bytes(0xb0, 0x100), 82,
       "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
       "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c6"
       "5e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"},
      {"A.3 zero-length salt and info", std::string(22, '\x0b'), "", "", 42,
       "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
       "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
  };

  for (const auto& c : cases) {
    SECTION(c.name) {
      unsigned char prk[dala::kHkdfSha256HashLen];
      dala::hkdf_sha256_extract(prk, c.salt, c.ikm);
      CHECK(to_hex(prk, sizeof prk) == c.prk);

      std::vector<unsigned char> okm(c.length);
      dala::hkdf_sha256_expand(okm.data(), okm.size(), prk, c.info);
      CHECK(to_hex(okm.data(), okm.size()) == c.okm);

      std::vector<unsigned char> one_shot(c.length);
      dala::hkdf_sha256(one_shot.data(), one_shot.size(), c.salt, c.ikm, c.info);
      CHECK(one_shot == okm);
    }
  }
}

TEST_CASE("an explicit all-zero salt equals the empty salt (RFC 5869 2.2)", "[hkdf]") {
  const std::string ikm(22, '\x0b');
  unsigned char a[32], b[32];
  dala::hkdf_sha256(a, sizeof a, "", ikm, "info");
  dala::hkdf_sha256(b, sizeof b, std::string(32, '\0'), ikm, "info");
  CHECK(to_hex(a, 32) == to_hex(b, 32));
}

TEST_CASE("output length limits: 0 .. 255*32 handled, more refused", "[hkdf]") {
  REQUIRE(sodium_init() >= 0);
  const std::string salt = "dala-dist-cookie-v1";
  const std::string ikm = "correct horse battery staple";
  const std::string info = "my_app";
  REQUIRE(dala::kHkdfSha256MaxOutput == 8160);

  SECTION("L = 0 writes nothing") {
    unsigned char sentinel = 0xAA;
    dala::hkdf_sha256(&sentinel, 0, salt, ikm, info);
    CHECK(sentinel == 0xAA);
  }

  SECTION("L = 255*32 works, every block is chained, and shorter outputs are its prefixes") {
    std::vector<unsigned char> full(dala::kHkdfSha256MaxOutput);
    dala::hkdf_sha256(full.data(), full.size(), salt, ikm, info);
    // Last block, from `openssl kdf -keylen 8160 ... HKDF` with the same inputs.
    CHECK(to_hex(full.data() + full.size() - 32, 32) ==
          "0d96e803e4be83c77b36b7f151ab6c6c6447b23aa098718e23415ca8077bf84e");
    for (size_t len : {1, 31, 32, 33, 64, 100, 8159}) {
      std::vector<unsigned char> part(len);
      dala::hkdf_sha256(part.data(), part.size(), salt, ikm, info);
      CHECK(std::equal(part.begin(), part.end(), full.begin()));
    }
  }

  SECTION("L = 255*32 + 1 is refused before anything is written") {
    std::vector<unsigned char> out(dala::kHkdfSha256MaxOutput + 1, 0xAA);
    CHECK_THROWS_MATCHES(dala::hkdf_sha256(out.data(), out.size(), salt, ikm, info),
                         std::invalid_argument,
                         Catch::Message("hkdf output length must be at most 8160 bytes, got 8161"));
    unsigned char prk[32] = {};
    CHECK_THROWS_AS(dala::hkdf_sha256_expand(out.data(), out.size(), prk, info),
                    std::invalid_argument);
    CHECK(std::all_of(out.begin(), out.end(), [](unsigned char b) { return b == 0xAA; }));
  }
}

TEST_CASE("ScopedWipe zeroes its buffer when the scope ends, also by exception", "[hkdf]") {
  unsigned char buf[16];
  std::fill(std::begin(buf), std::end(buf), 0x5A);
  try {
    dala::ScopedWipe wipe(buf, sizeof buf);
    throw std::runtime_error("leave the scope");
  } catch (const std::runtime_error&) {
  }
  CHECK(std::all_of(std::begin(buf), std::end(buf), [](unsigned char b) { return b == 0; }));
}
