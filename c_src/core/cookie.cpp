#include "cookie.h"

#include <sodium.h>

#include <stdexcept>
#include <string>

#include "ascii.h"
#include "hkdf.h"
#include "utf8.h"

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

void validate_app_name(std::string_view app_name) {
  if (app_name.empty()) throw std::invalid_argument("app_name must be a non-empty binary");
  if (app_name.size() > kMaxAppNameBytes) {
    throw std::invalid_argument("app_name must be at most " + std::to_string(kMaxAppNameBytes) +
                                " bytes, got " + std::to_string(app_name.size()));
  }
  if (!utf8::is_valid(app_name)) throw std::invalid_argument("app_name must be valid UTF-8");
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
