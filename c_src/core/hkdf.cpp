#include "hkdf.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace dala {

namespace {

const unsigned char* bytes(std::string_view s) noexcept {
  return reinterpret_cast<const unsigned char*>(s.data());
}

void check_output_length(std::size_t out_len) {
  if (out_len > kHkdfSha256MaxOutput) {
    throw std::invalid_argument("hkdf output length must be at most " +
                                std::to_string(kHkdfSha256MaxOutput) + " bytes, got " +
                                std::to_string(out_len));
  }
}

}  // namespace

void hkdf_sha256_extract(unsigned char prk[kHkdfSha256HashLen], std::string_view salt,
                         std::string_view ikm) noexcept {
  // HMAC pads its key with zeros to the block size, so HashLen zero bytes and an
  // empty key give the same PRK; spelling out the RFC's default keeps that obvious.
  static constexpr unsigned char kZeroSalt[kHkdfSha256HashLen] = {};
  const unsigned char* key = salt.empty() ? kZeroSalt : bytes(salt);
  const std::size_t key_len = salt.empty() ? sizeof kZeroSalt : salt.size();

  crypto_auth_hmacsha256_state state;
  ScopedWipe wipe_state(&state, sizeof state);
  crypto_auth_hmacsha256_init(&state, key, key_len);
  crypto_auth_hmacsha256_update(&state, bytes(ikm), ikm.size());
  crypto_auth_hmacsha256_final(&state, prk);
}

void hkdf_sha256_expand(unsigned char* out, std::size_t out_len,
                        const unsigned char prk[kHkdfSha256HashLen], std::string_view info) {
  check_output_length(out_len);

  // T(0) = empty; T(i) = HMAC(PRK, T(i-1) | info | i); OKM = first L bytes of T(1) | T(2) | ...
  unsigned char block[kHkdfSha256HashLen];
  crypto_auth_hmacsha256_state state;
  ScopedWipe wipe_block(block, sizeof block);
  ScopedWipe wipe_state(&state, sizeof state);

  std::size_t done = 0;
  for (unsigned int i = 1; done < out_len; ++i) {
    const auto counter = static_cast<unsigned char>(i);  // i <= 255 by the length check
    crypto_auth_hmacsha256_init(&state, prk, kHkdfSha256HashLen);
    if (i > 1) crypto_auth_hmacsha256_update(&state, block, sizeof block);
    crypto_auth_hmacsha256_update(&state, bytes(info), info.size());
    crypto_auth_hmacsha256_update(&state, &counter, 1);
    crypto_auth_hmacsha256_final(&state, block);
    const std::size_t n = std::min(out_len - done, sizeof block);
    std::copy(block, block + n, out + done);
    done += n;
  }
}

void hkdf_sha256(unsigned char* out, std::size_t out_len, std::string_view salt,
                 std::string_view ikm, std::string_view info) {
  check_output_length(out_len);
  unsigned char prk[kHkdfSha256HashLen];
  ScopedWipe wipe_prk(prk, sizeof prk);
  hkdf_sha256_extract(prk, salt, ikm);
  hkdf_sha256_expand(out, out_len, prk, info);
}

}  // namespace dala
