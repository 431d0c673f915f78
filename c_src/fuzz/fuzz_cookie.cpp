// libFuzzer target: the cookie's input checks (trim_secret, check_secret, validate_app_name,
// validate_env_var, utf8::is_valid) and, for inputs that pass, the derivation.
//
// The input is "<secret>|<app_name>" split at the first '|' (no '|': the app name is empty);
// every check also runs on the whole input.
//
// Invariants:
//   - no crash, no out-of-bounds read, no UB; only std::invalid_argument, whose message is one of
//     the fixed texts (plus a byte count), so it can never carry the secret or the checked value;
//   - trim_secret returns a sub-range without ASCII whitespace at either end;
//   - check_secret agrees with the rule written out here (empty, < 16 bytes, < 8 distinct);
//   - utf8::is_valid agrees with a reference decoder written out here (code points, not byte
//     ranges: no overlongs, surrogates or values above U+10FFFF);
//   - validate_app_name throws exactly for empty, > 255 bytes or invalid UTF-8, and
//     validate_env_var exactly for empty, '=' or NUL;
//   - cookie_from_secret writes 64 lowercase hex characters, the same on a second call, only
//     when the secret is Ok.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

#include "cookie.h"
#include "fuzz_check.h"
#include "utf8.h"

namespace ck = dala::cookie;

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// Decodes code points and checks their values, unlike the core's table of byte ranges.
bool reference_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (b0 < 0x80) {
      n = 1, cp = b0;
    } else if (b0 >= 0xC0 && b0 < 0xE0) {
      n = 2, cp = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 < 0xF0) {
      n = 3, cp = b0 & 0x0Fu;
    } else if (b0 >= 0xF0 && b0 < 0xF8) {
      n = 4, cp = b0 & 0x07u;
    } else {
      return false;
    }
    if (s.size() - i < n) return false;
    for (size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3Fu);
    }
    const uint32_t min = n == 1 ? 0 : n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

ck::SecretStatus reference_status(std::string_view trimmed) {
  if (trimmed.empty()) return ck::SecretStatus::Empty;
  if (trimmed.size() < ck::kMinSecretBytes) return ck::SecretStatus::WeakShort;
  bool seen[256] = {};
  size_t distinct = 0;
  for (char c : trimmed) {
    bool& s = seen[static_cast<unsigned char>(c)];
    distinct += s ? 0 : 1;
    s = true;
  }
  return distinct < ck::kMinDistinctBytes ? ck::SecretStatus::WeakDistinct : ck::SecretStatus::Ok;
}

// Messages are fixed texts (plus a byte count), so they cannot carry the secret or the value.
void check_message(const std::invalid_argument& e) {
  dala::fuzz::check_message(e);
  const std::string msg = e.what();
  const std::string too_long = "app_name must be at most 255 bytes, got ";
  if (msg.compare(0, too_long.size(), too_long) == 0) {
    FUZZ_CHECK(msg.size() > too_long.size());
    for (size_t i = too_long.size(); i < msg.size(); ++i)
      FUZZ_CHECK(msg[i] >= '0' && msg[i] <= '9');
    return;
  }
  FUZZ_CHECK(msg == "app_name must be a non-empty binary" ||
             msg == "app_name must be valid UTF-8" || msg == "env_var must be a non-empty binary" ||
             msg == "env_var must not contain \"=\"" ||
             msg == "env_var must not contain NUL bytes");
}

bool app_name_ok(std::string_view app) {
  try {
    ck::validate_app_name(app);
    return true;
  } catch (const std::invalid_argument& e) {
    check_message(e);
    return false;
  }
}

void check_all(std::string_view s) {
  const std::string_view t = ck::trim_secret(s);
  if (!t.empty()) {
    FUZZ_CHECK(t.data() >= s.data() && t.data() + t.size() <= s.data() + s.size());
    FUZZ_CHECK(!is_space(t.front()) && !is_space(t.back()));
  }
  FUZZ_CHECK(ck::check_secret(t) == reference_status(t));
  FUZZ_CHECK(dala::utf8::is_valid(s) == reference_utf8(s));

  const bool app_expected = !s.empty() && s.size() <= ck::kMaxAppNameBytes && reference_utf8(s);
  FUZZ_CHECK(app_name_ok(s) == app_expected);

  const bool env_expected =
      !s.empty() && s.find('=') == std::string_view::npos && s.find('\0') == std::string_view::npos;
  try {
    ck::validate_env_var(s);
    FUZZ_CHECK(env_expected);
  } catch (const std::invalid_argument& e) {
    check_message(e);
    FUZZ_CHECK(!env_expected);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto [secret, app] = dala::fuzz::split_pair(input);

  check_all(input);
  check_all(secret);

  if (!app_name_ok(app)) return 0;
  ck::CookieHex out;
  std::memset(out.data(), 'x', out.size());
  const ck::SecretStatus status = ck::cookie_from_secret(secret, app, out);
  FUZZ_CHECK(status == reference_status(ck::trim_secret(secret)));
  if (status != ck::SecretStatus::Ok) {
    for (char c : out) FUZZ_CHECK(c == 'x');  // untouched
    return 0;
  }
  FUZZ_CHECK(out[ck::kHexChars] == '\0');
  for (size_t i = 0; i < ck::kHexChars; ++i) {
    FUZZ_CHECK((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f'));
  }
  ck::CookieHex again;
  FUZZ_CHECK(ck::cookie_from_secret(secret, app, again) == status);
  FUZZ_CHECK(again == out);
  return 0;
}
