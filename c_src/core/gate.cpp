#include "gate.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>

#if defined(__linux__)
#include <sys/eventfd.h>
#endif

namespace dala::epmd {

namespace {

using std::chrono::milliseconds;

int64_t ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
}

// Sleeps until `until` or until `fd` is readable; returns true when woken by the fd.
bool sleep_or_wake(int fd, Clock::time_point until) {
  for (;;) {
    const auto left = until - Clock::now();
    if (left <= Clock::duration::zero()) return false;
    const auto ms = std::chrono::ceil<milliseconds>(left).count();
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1000000)));
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) {
      // Cannot happen with a valid fd; sleep anyway rather than spin.
      std::this_thread::sleep_until(until);
      return false;
    }
  }
}

}  // namespace

namespace {

// One wait's wake-up: an eventfd (read and write are the same fd) or a pipe.
class WakeFd {
 public:
  WakeFd() {
#if defined(__linux__)
    read_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!read_.valid()) throw std::system_error(errno, std::generic_category(), "eventfd");
#else
    int fds[2];
    if (::pipe(fds) < 0) throw std::system_error(errno, std::generic_category(), "pipe");
    read_.reset(fds[0]);
    write_.reset(fds[1]);
    for (int fd : fds) {
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
#endif
  }
  int read_fd() const noexcept { return read_.get(); }
  int write_fd() const noexcept { return write_.valid() ? write_.get() : read_.get(); }

 private:
  Fd read_;
  Fd write_;  // invalid for an eventfd
};

void signal_fd(int fd) noexcept {
#if defined(__linux__)
  const uint64_t one = 1;
#else
  const char one = 1;
#endif
  ssize_t rc;
  do rc = ::write(fd, &one, sizeof one);
  while (rc < 0 && errno == EINTR);
  (void)rc;  // EAGAIN means it is readable already, which is all we need
}

}  // namespace

void Gate::cancel() noexcept {
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (wake_fd_ >= 0) signal_fd(wake_fd_);
}

WaitResult Gate::wait(const Endpoint& ep, milliseconds timeout, const Backoff& backoff) {
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  WaitResult r;

  const WakeFd wake;
  {
    // Registered under the lock, after checking the flag under it: a cancel() either comes
    // before (we see the flag) or finds our fd.
    std::lock_guard<std::mutex> lock(mu_);
    if (is_cancelled()) {
      r.kind = WaitResult::Kind::Cancelled;
      r.elapsed_ms = ms_since(start);
      return r;
    }
    if (wake_fd_ >= 0) throw std::invalid_argument("gate is already being waited on");
    wake_fd_ = wake.write_fd();
  }
  struct Unregister {
    Gate* gate;
    ~Unregister() {
      std::lock_guard<std::mutex> lock(gate->mu_);
      gate->wake_fd_ = -1;
    }
  } unregister{this};
  auto sleep = std::max(backoff.initial, std::chrono::microseconds(1));
  const auto cap = std::max(backoff.max, sleep);
  const unsigned factor = std::max(backoff.factor, 1u);

  for (;;) {
    if (is_cancelled()) {
      r.kind = WaitResult::Kind::Cancelled;
      break;
    }
    if (Clock::now() >= deadline) {
      r.kind = WaitResult::Kind::Timeout;
      break;
    }
    ++r.attempts;
    const auto own_deadline = Clock::now() + backoff.attempt_timeout;
    const bool cut_short = deadline < own_deadline;
    const IoLimits limits{cut_short ? deadline : own_deadline, wake.read_fd()};
    auto outcome = names(ep, limits);
    if (outcome.status == Status::Ok) {
      r.kind = WaitResult::Kind::Ready;
      r.names = std::move(outcome.value.names);
      r.epmd_port = outcome.value.epmd_port;
      break;
    }
    if (outcome.status == Status::Cancelled) {
      r.kind = WaitResult::Kind::Cancelled;
      break;
    }
    // An attempt that the overall deadline cut short tells nothing new about the peer: keep
    // the previous attempt's reason (a dead tunnel ends with "closed", not "timeout").
    if (!(cut_short && std::string_view(outcome.reason) == "timeout" && r.attempts > 1)) {
      r.last_error = outcome.reason;
    }
    const auto wake_at = std::min(Clock::now() + sleep, deadline);
    // Only cancel() ever signals the wake fd, so being woken means cancelled.
    if (sleep_or_wake(wake.read_fd(), wake_at)) {
      r.kind = WaitResult::Kind::Cancelled;
      break;
    }
    sleep = std::min(sleep * factor, cap);
  }
  r.elapsed_ms = ms_since(start);
  return r;
}

const char* kind_name(WaitResult::Kind k) noexcept {
  switch (k) {
    case WaitResult::Kind::Ready:
      return "ready";
    case WaitResult::Kind::Timeout:
      return "timeout";
    case WaitResult::Kind::Cancelled:
      return "cancelled";
  }
  return "timeout";
}

}  // namespace dala::epmd
