// One-shot EPMD requests over TCP: connect, send one request, read the reply to EOF.
//
// Sockets are non-blocking and every wait is a poll() bounded by the caller's deadline, so a peer
// that accepts and never answers cannot hold a request past it. An optional cancel fd (an eventfd
// or the read end of a pipe) is polled beside the socket: once it is readable the request stops
// at once with Status::Cancelled. Failures are reported by short reason names that match the atoms
// of OTP's inet ("econnrefused", "timeout", "closed", ...). Every fd opened here is closed on every
// path by the Fd wrapper.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <string_view>
#include <utility>

#include "epmd_proto.h"

namespace dala::epmd {

using Clock = std::chrono::steady_clock;

// An owned file descriptor; closes it when destroyed. Move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// Where EPMD listens: an IPv4 address and a TCP port.
struct Endpoint {
  in_addr addr{};
  uint16_t port = 0;
};

// Parses `ip` as a dotted-quad IPv4 literal (inet_pton; never DNS) and checks 1 <= port <= 65535.
// Throws std::invalid_argument naming `ip` or `port`.
Endpoint make_endpoint(std::string_view ip, long port);

// The reason name of a POSIX errno value, in the spelling of inet's error atoms ("econnrefused").
const char* errno_reason(int err) noexcept;

enum class Status { Ok, Error, Cancelled };

// What ended one request: Ok with a value, Error with a static reason name, or Cancelled.
template <typename T>
struct Outcome {
  Status status = Status::Error;
  const char* reason = "timeout";  // static string; meaningful when status == Error
  T value{};

  bool ok() const noexcept { return status == Status::Ok; }
};

// Bounds of one request: it ends by `deadline` (steady clock) at the latest, and at once when
// `cancel_fd` (if >= 0) becomes readable.
struct IoLimits {
  Clock::time_point deadline;
  int cancel_fd = -1;
};

IoLimits limits_after(std::chrono::milliseconds timeout, int cancel_fd = -1);

// NAMES_REQ. Ok means a complete, well-formed reply followed by EOF. Errors: "closed" (EOF before
// a complete reply), "bad_reply" (bytes that can never be a NAMES reply, or more than
// kMaxReplyBytes), "timeout", or a POSIX reason ("econnrefused", "econnreset", ...).
Outcome<NamesReply> names(const Endpoint& ep, const IoLimits& limits);

// PORT_PLEASE2_REQ for `name` (1..kMaxNameBytes bytes, else std::invalid_argument naming `name`).
// Ok with reply.registered false when EPMD has no such name. Errors as for names().
Outcome<Port2Reply> port_please(const Endpoint& ep, std::string_view name, const IoLimits& limits);

// KILL_REQ. Ok with value true when EPMD answered "OK" (it stops), false for "NO" (it refused,
// e.g. because nodes are still registered and it runs without -relaxed_command_check).
Outcome<bool> kill(const Endpoint& ep, const IoLimits& limits);

}  // namespace dala::epmd
