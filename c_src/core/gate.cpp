#include "gate.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string_view>
#include <system_error>

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
    if (rc < 0 && errno != EINTR) return false;  // cannot happen with a valid fd; don't spin
  }
}

}  // namespace

Gate::Gate() {
#if defined(__linux__)
  wake_read_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_read_.valid()) throw std::system_error(errno, std::generic_category(), "eventfd");
#else
  int fds[2];
  if (::pipe(fds) < 0) throw std::system_error(errno, std::generic_category(), "pipe");
  wake_read_.reset(fds[0]);
  wake_write_.reset(fds[1]);
  for (int fd : fds) {
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
#endif
}

void Gate::cancel() noexcept {
  // The flag first, then the wake-up: a waiter that sees the fd readable also sees the flag.
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  const int fd = wake_write_.valid() ? wake_write_.get() : wake_read_.get();
#if defined(__linux__)
  const uint64_t one = 1;
  ssize_t rc;
  do rc = ::write(fd, &one, sizeof one);
  while (rc < 0 && errno == EINTR);
#else
  const char one = 1;
  ssize_t rc;
  do rc = ::write(fd, &one, 1);
  while (rc < 0 && errno == EINTR);
#endif
  (void)rc;  // EAGAIN means it is readable already, which is all we need
}

void Gate::rearm() noexcept {
  uint64_t buf[8];
  while (::read(wake_read_.get(), buf, sizeof buf) > 0) {
  }
  cancelled_.store(false, std::memory_order_release);
}

WaitResult Gate::wait(const Endpoint& ep, milliseconds timeout, const Backoff& backoff) {
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  WaitResult r;
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
    const IoLimits limits{cut_short ? deadline : own_deadline, wake_read_.get()};
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
    if (sleep_or_wake(wake_read_.get(), wake_at) && is_cancelled()) {
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
