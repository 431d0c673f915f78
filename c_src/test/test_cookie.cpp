#include <sodium.h>

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>

#include "cookie.h"

using dala::cookie::SecretStatus;

namespace {

std::string derive(const std::string& secret, const std::string& app) {
  dala::cookie::CookieHex hex;
  dala::cookie::derive_cookie(secret, app, hex);
  return std::string(hex.data());
}

// What openssl says for the same inputs:
//   openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt key:"correct horse battery staple"
//     -kdfopt salt:dala-dist-cookie-v1 -kdfopt info:my_app HKDF
const char* const kMyAppCookie = "e052808221ec1645e4132e10fd9ddd1410a5a0b4176c7c55f00ac6c681bb1f5d";
const char* const kOtherAppCookie =
    "819d8acfc94285e3c3ecebd1fa00b7340b1bef8a543258b37f17cf4b586a0d0b";

}  // namespace

TEST_CASE("known vector: HKDF-SHA256 with the dala salt, app name as info", "[cookie]") {
  REQUIRE(sodium_init() >= 0);
  CHECK(derive("correct horse battery staple", "my_app") == kMyAppCookie);
  CHECK(derive("correct horse battery staple", "other_app") == kOtherAppCookie);
}

TEST_CASE("the cookie is 64 lowercase hex characters and NUL-terminated", "[cookie]") {
  dala::cookie::CookieHex hex;
  dala::cookie::derive_cookie("0123456789abcdefXYZ", "app", hex);
  CHECK(hex[64] == '\0');
  const std::string s(hex.data());
  CHECK(s.size() == 64);
  CHECK(s.find_first_not_of("0123456789abcdef") == std::string::npos);
}

TEST_CASE("trimming removes ASCII whitespace at both ends only", "[cookie]") {
  using dala::cookie::trim_secret;
  CHECK(trim_secret("  \t\r\n\v\fabc def\n") == "abc def");
  CHECK(trim_secret("abc") == "abc");
  CHECK(trim_secret(" \t\n") == "");
  CHECK(trim_secret("") == "");
  CHECK(trim_secret("\xc2\xa0x\xc2\xa0") == "\xc2\xa0x\xc2\xa0");  // NBSP is not ASCII whitespace

  // A trailing newline (echo "$S" > file) does not change the cookie; inner spaces do count.
  dala::cookie::CookieHex a, b;
  CHECK(dala::cookie::cookie_from_secret("correct horse battery staple\n", "my_app", a) ==
        SecretStatus::Ok);
  CHECK(std::string(a.data()) == kMyAppCookie);
  CHECK(dala::cookie::cookie_from_secret("\t correct horse battery staple  ", "my_app", b) ==
        SecretStatus::Ok);
  CHECK(std::string(b.data()) == kMyAppCookie);
  CHECK(derive("correct horse  battery staple", "my_app") != kMyAppCookie);
}

TEST_CASE("weak-secret rules", "[cookie]") {
  using dala::cookie::check_secret;
  CHECK(check_secret("") == SecretStatus::Empty);
  CHECK(check_secret("abcdefghijklmno") == SecretStatus::WeakShort);  // 15 bytes
  CHECK(check_secret("abcdefghijklmnop") == SecretStatus::Ok);        // 16 bytes, 16 values
  CHECK(check_secret("aaaa") == SecretStatus::WeakShort);             // short wins
  CHECK(check_secret("abcdefgabcdefgabcdefg") == SecretStatus::WeakDistinct);  // 7 values
  CHECK(check_secret("abcdefghabcdefgh") == SecretStatus::Ok);                 // exactly 8 values
  CHECK(check_secret(std::string(64, 'x')) == SecretStatus::WeakDistinct);
  // Bytes, not characters: "é" is two byte values.
  CHECK(check_secret("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9") ==
        SecretStatus::WeakDistinct);

  dala::cookie::CookieHex hex;
  hex.fill('#');
  CHECK(dala::cookie::cookie_from_secret("   short   ", "app", hex) == SecretStatus::WeakShort);
  CHECK(dala::cookie::cookie_from_secret(std::string(40, 'z'), "app", hex) ==
        SecretStatus::WeakDistinct);
  CHECK(dala::cookie::cookie_from_secret(" \n\t ", "app", hex) == SecretStatus::Empty);
  CHECK(hex[0] == '#');  // nothing written unless Ok
  // Whitespace at the ends is trimmed before the length rule is applied.
  CHECK(dala::cookie::cookie_from_secret("      abcdefghijklmno      ", "app", hex) ==
        SecretStatus::WeakShort);
}

TEST_CASE("env_var rules and their messages", "[cookie]") {
  using dala::cookie::validate_env_var;
  CHECK_NOTHROW(validate_env_var("MY_APP_DIST_COOKIE"));
  CHECK_THROWS_MATCHES(validate_env_var(""), std::invalid_argument,
                       Catch::Message("env_var must be a non-empty binary"));
  CHECK_THROWS_MATCHES(validate_env_var("A=B"), std::invalid_argument,
                       Catch::Message("env_var must not contain \"=\""));
  CHECK_THROWS_MATCHES(validate_env_var(std::string("A\0B", 3)), std::invalid_argument,
                       Catch::Message("env_var must not contain NUL bytes"));
}

TEST_CASE("app_name rules and their messages", "[cookie]") {
  using dala::cookie::validate_app_name;
  CHECK_NOTHROW(validate_app_name("my_app"));
  CHECK_NOTHROW(validate_app_name("приложение-😀"));
  CHECK_NOTHROW(validate_app_name(std::string(255, 'a')));
  CHECK_THROWS_MATCHES(validate_app_name(""), std::invalid_argument,
                       Catch::Message("app_name must be a non-empty binary"));
  CHECK_THROWS_MATCHES(validate_app_name(std::string(256, 'a')), std::invalid_argument,
                       Catch::Message("app_name must be at most 255 bytes, got 256"));
  for (const char* bad : {"\xff", "a\x80", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
                          "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x82", "\xf0\x9f\x98"}) {
    CAPTURE(std::string(bad));
    CHECK_THROWS_MATCHES(validate_app_name(bad), std::invalid_argument,
                         Catch::Message("app_name must be valid UTF-8"));
  }
  // derive_cookie and cookie_from_secret check app_name too, before looking at the secret.
  dala::cookie::CookieHex hex;
  CHECK_THROWS_MATCHES(dala::cookie::derive_cookie("correct horse battery staple", "", hex),
                       std::invalid_argument,
                       Catch::Message("app_name must be a non-empty binary"));
  CHECK_THROWS_MATCHES(dala::cookie::cookie_from_secret("x", "\xff", hex), std::invalid_argument,
                       Catch::Message("app_name must be valid UTF-8"));
}

TEST_CASE("messages never contain the secret", "[cookie]") {
  // No function taking the secret throws for it; weak secrets are a status, not an exception.
  const std::string secret = "s3cr3t-VALUE-that-must-not-leak";
  dala::cookie::CookieHex hex;
  try {
    dala::cookie::cookie_from_secret(secret, std::string(300, 'a'), hex);
    FAIL("expected an exception");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("s3cr3t") == std::string::npos);
  }
}

TEST_CASE("wiping intermediate key material does not change results", "[cookie]") {
  // The same derivation, repeated and interleaved with others, gives identical bytes:
  // wiping happens after the output is written, never before.
  for (int i = 0; i < 50; ++i) {
    CHECK(derive("correct horse battery staple", "my_app") == kMyAppCookie);
    CHECK(derive("correct horse battery staple", "other_app") == kOtherAppCookie);
  }
  // An exception on the way (bad app name) leaves later derivations intact.
  dala::cookie::CookieHex hex;
  CHECK_THROWS(dala::cookie::derive_cookie("correct horse battery staple", "", hex));
  CHECK(derive("correct horse battery staple", "my_app") == kMyAppCookie);
}
