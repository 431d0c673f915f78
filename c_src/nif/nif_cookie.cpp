// cookie_from_env/2: the adapter between erl_nif and dala::cookie.
//
// The secret is read with enif_getenv straight into sodium_malloc'd memory, so it
// never enters the BEAM heap; sodium_free wipes that memory when the read is done.
// The fallback secret for an unset variable is drawn once per loaded library and
// lives read-only in sodium_malloc'd memory until unload.
#include <sodium.h>

#include <cstddef>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "cookie.h"
#include "hkdf.h"
#include "nif_util.h"

namespace dala::nif {

namespace {

// A sodium_malloc'd byte buffer; sodium_free zeroes it before releasing it.
class SecretBuffer {
 public:
  SecretBuffer() = default;
  SecretBuffer(SecretBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        capacity_(std::exchange(other.capacity_, 0)),
        length_(std::exchange(other.length_, 0)) {}
  SecretBuffer& operator=(SecretBuffer&&) = delete;
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;
  ~SecretBuffer() { release(); }

  void allocate(std::size_t capacity) {
    release();
    data_ = static_cast<char*>(sodium_malloc(capacity));
    if (data_ == nullptr) throw std::bad_alloc();
    capacity_ = capacity;
  }
  char* data() noexcept { return data_; }
  std::size_t capacity() const noexcept { return capacity_; }
  void set_length(std::size_t length) noexcept { length_ = length; }
  std::string_view view() const noexcept { return {data_, length_}; }

 private:
  void release() noexcept {
    if (data_ != nullptr) sodium_free(data_);
    data_ = nullptr;
    capacity_ = length_ = 0;
  }

  char* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t length_ = 0;
};

// Values longer than this are refused (std::invalid_argument naming the variable): no real
// secret is that long, and the buffer is locked memory.
constexpr std::size_t kMaxSecretBytes = 16u << 20;

// The value of environment variable `name`; an unset variable reads as empty.
//
// enif_getenv reports "too small" with rc 1, but what it leaves in *size differs between OTP
// versions (the size needed, or the buffer's size minus one on OTP 25), so the only rule used
// here is: grow (at least double) until the value fits or passes kMaxSecretBytes. A value that
// keeps growing under us ends at the same bound.
SecretBuffer read_env(const std::string& name) {
  SecretBuffer buffer;
  std::size_t want = 256;
  for (;;) {
    buffer.allocate(want);
    std::size_t size = buffer.capacity();
    const int rc = enif_getenv(name.c_str(), buffer.data(), &size);
    if (rc == 0) {
      buffer.set_length(size);
      return buffer;
    }
    if (rc < 0) return SecretBuffer();  // not set
    if (want >= kMaxSecretBytes) {
      throw std::invalid_argument("environment variable " + name +
                                  " holds a value longer than 16 MiB");
    }
    // size + 1: room for the terminating NUL when size is the length needed.
    want = size + 1 > want * 2 ? size + 1 : want * 2;
  }
}

// The per-library fallback secret. load/unload may nest across a code upgrade when
// both instances share this library's statics, hence the reference count.
std::mutex random_secret_mutex;
unsigned char* random_secret = nullptr;
int random_secret_refs = 0;

std::string_view random_secret_view() noexcept {
  return {reinterpret_cast<const char*>(random_secret), cookie::kKeyBytes};
}

ERL_NIF_TERM make_cookie(ErlNifEnv* env, ERL_NIF_TERM tag, const cookie::CookieHex& hex) {
  return enif_make_tuple2(env, tag, make_binary(env, {hex.data(), cookie::kHexChars}));
}

}  // namespace

bool load_cookie(ErlNifEnv*, const char** why) {
  std::lock_guard<std::mutex> lock(random_secret_mutex);
  if (random_secret_refs == 0) {
    random_secret = static_cast<unsigned char*>(sodium_malloc(cookie::kKeyBytes));
    if (random_secret == nullptr) {
      *why = "cannot allocate the fallback cookie secret";
      return false;
    }
    randombytes_buf(random_secret, cookie::kKeyBytes);
    sodium_mprotect_readonly(random_secret);
  }
  ++random_secret_refs;
  return true;
}

void unload_cookie() {
  std::lock_guard<std::mutex> lock(random_secret_mutex);
  if (random_secret_refs > 0 && --random_secret_refs == 0) {
    sodium_free(random_secret);  // zeroes it first (and lifts the read-only protection)
    random_secret = nullptr;
  }
}

DALA_NIF(cookie_from_env) {
  (void)argc;
  return guard(env, [&]() -> ERL_NIF_TERM {
    const std::string_view env_var = get_binary(env, argv[0], "env_var");
    const std::string_view app_name = get_binary(env, argv[1], "app_name");
    cookie::validate_env_var(env_var);
    cookie::validate_app_name(app_name);

    cookie::CookieHex hex;
    ScopedWipe wipe_hex(hex.data(), hex.size());
    cookie::SecretStatus status;
    {
      const SecretBuffer secret = read_env(std::string(env_var));
      status = cookie::cookie_from_secret(secret.view(), app_name, hex);
    }
    switch (status) {
      case cookie::SecretStatus::Ok:
        return make_cookie(env, atoms.ok, hex);
      case cookie::SecretStatus::Empty:
        cookie::derive_cookie(random_secret_view(), app_name, hex);
        return make_cookie(env, atoms.generated, hex);
      case cookie::SecretStatus::WeakShort:
        return enif_make_tuple2(env, atoms.error, atoms.weak_short);
      case cookie::SecretStatus::WeakDistinct:
        return enif_make_tuple2(env, atoms.error, atoms.weak_distinct);
    }
    throw std::logic_error("unknown secret status");
  });
}

}  // namespace dala::nif
