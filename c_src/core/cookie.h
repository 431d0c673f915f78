// Distribution cookies derived from one secret: the rules and the derivation.
//
//   cookie = lowercase hex of HKDF-SHA256(IKM = secret, salt = "dala-dist-cookie-v1",
//                                         info = app_name, L = 32)
//
// The secret is taken after trimming ASCII whitespace at both ends (so a trailing
// newline from `echo "$S" > file` does not change the cookie). No message built
// here ever contains secret bytes; argument messages name the argument only.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace dala::cookie {

inline constexpr std::string_view kSalt = "dala-dist-cookie-v1";
inline constexpr std::size_t kKeyBytes = 32;             // HKDF L
inline constexpr std::size_t kHexChars = 2 * kKeyBytes;  // 64
inline constexpr std::size_t kMinSecretBytes = 16;
inline constexpr std::size_t kMinDistinctBytes = 8;
inline constexpr std::size_t kMaxAppNameBytes = 255;

// 64 lowercase hex characters and a terminating NUL (sodium_bin2hex writes one).
// Holds a cookie: callers wipe it when done.
using CookieHex = std::array<char, kHexChars + 1>;

enum class SecretStatus {
  Ok,
  Empty,         // unset, empty, or only whitespace: the caller falls back to a random secret
  WeakShort,     // fewer than kMinSecretBytes bytes after trimming
  WeakDistinct,  // fewer than kMinDistinctBytes distinct byte values
};

// The secret without ASCII whitespace (space, \t, \n, \v, \f, \r) at either end.
std::string_view trim_secret(std::string_view raw) noexcept;

// Classifies an already trimmed secret. Length is checked before distinctness.
SecretStatus check_secret(std::string_view trimmed) noexcept;

// Throw std::invalid_argument naming the argument:
//   env_var: non-empty, no '=', no NUL.
//   app_name: non-empty, valid UTF-8 (no overlongs, surrogates or code points
//   above U+10FFFF), at most kMaxAppNameBytes bytes.
void validate_env_var(std::string_view env_var);
void validate_app_name(std::string_view app_name);

// Writes the cookie for (secret, app_name) into out. The secret is used as given
// (trim and check it first); app_name is validated (throws as above).
void derive_cookie(std::string_view secret, std::string_view app_name, CookieHex& out);

// trim + check + derive. out is written only when the result is SecretStatus::Ok.
SecretStatus cookie_from_secret(std::string_view raw_secret, std::string_view app_name,
                                CookieHex& out);

}  // namespace dala::cookie
