// HKDF-SHA256 (RFC 5869) on libsodium's HMAC-SHA256.
//
// libsodium 1.0.18 (Debian 12) has no HKDF API, so Extract and Expand are
// built on crypto_auth_hmacsha256_{init,update,final}. Every buffer and HMAC
// state that holds key material is wiped with sodium_memzero before it goes
// out of scope, on every path, exceptions included (ScopedWipe).
#pragma once

#include <sodium.h>

#include <cstddef>
#include <string_view>

namespace dala {

// Wipes [data, data + size) with sodium_memzero when the scope ends, however it ends.
class ScopedWipe {
 public:
  ScopedWipe(void* data, std::size_t size) noexcept : data_(data), size_(size) {}
  ~ScopedWipe() { sodium_memzero(data_, size_); }
  ScopedWipe(const ScopedWipe&) = delete;
  ScopedWipe& operator=(const ScopedWipe&) = delete;

 private:
  void* data_;
  std::size_t size_;
};

inline constexpr std::size_t kHkdfSha256HashLen = crypto_auth_hmacsha256_BYTES;  // 32
// RFC 5869 section 2.3: L <= 255 * HashLen.
inline constexpr std::size_t kHkdfSha256MaxOutput = 255 * kHkdfSha256HashLen;  // 8160

// HKDF-Extract: PRK = HMAC-SHA256(salt, IKM). An empty salt means HashLen zero
// bytes (RFC 5869 section 2.2).
void hkdf_sha256_extract(unsigned char prk[kHkdfSha256HashLen], std::string_view salt,
                         std::string_view ikm) noexcept;

// HKDF-Expand: fills out[0, out_len) from PRK and info. out_len may be 0.
// Throws std::invalid_argument when out_len > kHkdfSha256MaxOutput (nothing is
// written then).
void hkdf_sha256_expand(unsigned char* out, std::size_t out_len,
                        const unsigned char prk[kHkdfSha256HashLen], std::string_view info);

// Extract then Expand; the intermediate PRK is wiped. Same limits as Expand,
// checked before any key material is computed.
void hkdf_sha256(unsigned char* out, std::size_t out_len, std::string_view salt,
                 std::string_view ikm, std::string_view info);

}  // namespace dala
