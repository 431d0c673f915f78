#include "cookie.h"

#include <sodium.h>

#include <stdexcept>
#include <string>

#include "ascii.h"
#include "hkdf.h"

namespace dala::cookie {

std::string_view trim_secret(std::string_view raw) noexcept { return trim_ascii_whitespace(raw); }

SecretStatus check_secret(std::string_view trimmed) noexcept {
  if (trimmed.empty()) return SecretStatus::Empty;
  if (trimmed.size() < kMinSecretBytes) return SecretStatus::WeakShort;
  // Which byte values occur says something about the secret: wipe the table too.
  bool seen[256] = {};
  ScopedWipe wipe_seen(seen, sizeof seen);
  std::size_t distinct = 0;
  for (char c : trimmed) {
    bool& s = seen[static_cast<unsigned char>(c)];
    if (!s) {
      s = true;
      ++distinct;
    }
  }
  return distinct < kMinDistinctBytes ? SecretStatus::WeakDistinct : SecretStatus::Ok;
}

void validate_env_var(std::string_view env_var) {
  // The value is never echoed: a caller who swapped the arguments would leak the secret.
  if (env_var.empty()) throw std::invalid_argument("env_var must be a non-empty binary");
  if (env_var.find('=') != std::string_view::npos) {
    throw std::invalid_argument("env_var must not contain \"=\"");
  }
  if (env_var.find('\0') != std::string_view::npos) {
    throw std::invalid_argument("env_var must not contain NUL bytes");
  }
}

bool is_valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // UTF-16 surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return false;  // continuation byte, overlong 2-byte lead, or beyond U+10FFFF
    }
    if (n - i < len) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (std::size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return false;
    }
    i += len;
  }
  return true;
}

void validate_app_name(std::string_view app_name) {
  if (app_name.empty()) throw std::invalid_argument("app_name must be a non-empty binary");
  if (app_name.size() > kMaxAppNameBytes) {
    throw std::invalid_argument("app_name must be at most " + std::to_string(kMaxAppNameBytes) +
                                " bytes, got " + std::to_string(app_name.size()));
  }
  if (!is_valid_utf8(app_name)) throw std::invalid_argument("app_name must be valid UTF-8");
}

void derive_cookie(std::string_view secret, std::string_view app_name, CookieHex& out) {
  validate_app_name(app_name);
  unsigned char key[kKeyBytes];
  ScopedWipe wipe_key(key, sizeof key);
  hkdf_sha256(key, sizeof key, kSalt, secret, app_name);
  sodium_bin2hex(out.data(), out.size(), key, sizeof key);
}

SecretStatus cookie_from_secret(std::string_view raw_secret, std::string_view app_name,
                                CookieHex& out) {
  validate_app_name(app_name);  // argument errors come before any verdict on the secret
  const std::string_view secret = trim_secret(raw_secret);
  const SecretStatus status = check_secret(secret);
  if (status == SecretStatus::Ok) derive_cookie(secret, app_name, out);
  return status;
}

}  // namespace dala::cookie
