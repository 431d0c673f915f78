// dala_gate_bench: the native half of bench/gate_bench.exs (built only with -DDALA_BUILD_BENCH=ON).
//
//   dala_gate_bench launcher EPMD_EXE
//     Commands on stdin, one a line. "start PORT" starts `EPMD_EXE -port PORT -address 127.0.0.1`
//     in the foreground and answers "up OS_PID T0_NS" once it accepts a connection; "stop" ends
//     it (SIGTERM, reaped) and answers "down". At EOF it ends the epmd it still runs, then exits.
//     T0_NS is CLOCK_MONOTONIC, the clock the BEAM's os_monotonic_time_source reads, so the
//     script can subtract it from its own readings.
//
//   dala_gate_bench curve EPMD_EXE PORT DEAD_PORT INITIAL_US MAX_US CPU_MS RUNS MIN_MS MAX_MS SEED
//     The core gate with Backoff{INITIAL_US, MAX_US}, no VM around it. First the CPU it uses per
//     second of waiting with nothing on PORT and through the dead tunnel on DEAD_PORT (lines
//     "cpu none|dead CPU_NS WALL_NS ATTEMPTS RESULT LAST_ERROR"); then RUNS times: a wait starts,
//     epmd starts on PORT after a random MIN_MS..MAX_MS, and "lat NS RESULT" is the time from epmd
//     first accepting to the gate returning.
//
// "Accepting" is seen by an oracle that tries connect() every 20 us from the moment epmd is
// forked until it succeeds: it costs CPU only during epmd's few milliseconds of start-up.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "epmd_client.h"
#include "gate.h"

using dala::epmd::Backoff;
using dala::epmd::Endpoint;
using dala::epmd::Fd;
using dala::epmd::Gate;
using dala::epmd::WaitResult;

namespace {

int64_t clock_ns(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

int64_t mono_ns() { return clock_ns(CLOCK_MONOTONIC); }
int64_t cpu_ns() { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

void sleep_us(int64_t us) { std::this_thread::sleep_for(std::chrono::microseconds(us)); }

long parse_long(const char* s, const char* what) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 0) {
    throw std::invalid_argument(std::string(what) + " must be a non-negative integer, got " + s);
  }
  return v;
}

// An epmd in the foreground, owned by this process: ended by PID and reaped.
class Epmd {
 public:
  Epmd(const std::string& exe, long port) {
    // Everything the child needs is built before fork(): after it, only async-signal-safe
    // calls (open, dup2, execve, _exit), since the gate's thread may be running.
    const std::string port_s = std::to_string(port);
    std::vector<std::string> args{exe, "-port", port_s, "-address", "127.0.0.1"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "ERL_EPMD_", 9) != 0) envp.push_back(*e);
    }
    envp.push_back(nullptr);

    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_RDWR);
      if (null >= 0) {
        ::dup2(null, 0);
        ::dup2(null, 1);
        ::dup2(null, 2);
      }
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
  }
  Epmd(const Epmd&) = delete;
  Epmd& operator=(const Epmd&) = delete;
  ~Epmd() { stop(); }

  pid_t pid() const noexcept { return pid_; }

  // CLOCK_MONOTONIC ns of the first connect() that succeeded, or -1 if epmd exited first or did
  // not accept within 5 s.
  int64_t wait_accepting(long port) const {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(static_cast<uint16_t>(port));
    const int64_t give_up = mono_ns() + 5'000'000'000;
    while (mono_ns() < give_up) {
      const Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!fd.valid()) return -1;
      if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) {
        return mono_ns();
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) return -1;
      sleep_us(20);
    }
    return -1;
  }

  // SIGTERM, up to 2 s for it to exit, then SIGKILL; always reaped.
  void stop() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 2000; ++i) {
      const pid_t rc = ::waitpid(pid_, &status, WNOHANG);
      if (rc == pid_ || rc < 0) {
        pid_ = -1;
        return;
      }
      sleep_us(1000);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

int launcher(const std::string& exe) {
  std::unique_ptr<Epmd> epmd;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.rfind("start ", 0) == 0) {
      const long port = parse_long(line.c_str() + 6, "PORT");
      if (epmd) epmd->stop();
      epmd = std::make_unique<Epmd>(exe, port);
      const int64_t t0 = epmd->wait_accepting(port);
      if (t0 < 0) {
        epmd.reset();
        std::printf("error epmd_did_not_start\n");
      } else {
        std::printf("up %d %lld\n", static_cast<int>(epmd->pid()), static_cast<long long>(t0));
      }
    } else if (line == "stop") {
      epmd.reset();
      std::printf("down\n");
    } else {
      std::printf("error unknown_command\n");
    }
    std::fflush(stdout);
  }
  return 0;  // EOF: the unique_ptr ends the epmd
}

void print_cpu(const char* kind, Gate& gate, const Endpoint& ep, long cpu_ms, const Backoff& b) {
  const int64_t c0 = cpu_ns();
  const int64_t w0 = mono_ns();
  const WaitResult r = gate.wait(ep, std::chrono::milliseconds(cpu_ms), b);
  const int64_t w1 = mono_ns();
  const int64_t c1 = cpu_ns();
  std::printf("cpu %s %lld %lld %u %s %s\n", kind, static_cast<long long>(c1 - c0),
              static_cast<long long>(w1 - w0), r.attempts, dala::epmd::kind_name(r.kind),
              r.last_error);
  std::fflush(stdout);
}

int curve(char** argv) {
  const std::string exe = argv[0];
  const long port = parse_long(argv[1], "PORT");
  const long dead_port = parse_long(argv[2], "DEAD_PORT");
  Backoff b;
  b.initial = std::chrono::microseconds(parse_long(argv[3], "INITIAL_US"));
  b.max = std::chrono::microseconds(parse_long(argv[4], "MAX_US"));
  const long cpu_ms = parse_long(argv[5], "CPU_MS");
  const long runs = parse_long(argv[6], "RUNS");
  const long min_ms = parse_long(argv[7], "MIN_MS");
  const long max_ms = parse_long(argv[8], "MAX_MS");
  std::mt19937_64 rng(static_cast<uint64_t>(parse_long(argv[9], "SEED")));
  std::uniform_int_distribution<long> delay_us(min_ms * 1000, std::max(min_ms, max_ms) * 1000);

  const Endpoint ep = dala::epmd::make_endpoint("127.0.0.1", port);
  const Endpoint dead = dala::epmd::make_endpoint("127.0.0.1", dead_port);
  {
    Gate gate;
    print_cpu("none", gate, ep, cpu_ms, b);
    print_cpu("dead", gate, dead, cpu_ms, b);
  }

  for (long i = 0; i < runs; ++i) {
    Gate gate;
    std::atomic<int64_t> t1{0};
    WaitResult r;
    std::thread waiter([&] {
      r = gate.wait(ep, std::chrono::milliseconds(10'000), b);
      t1.store(mono_ns());
    });
    sleep_us(delay_us(rng));
    int64_t t0 = -1;
    {
      Epmd epmd(exe, port);
      t0 = epmd.wait_accepting(port);
      if (t0 < 0) gate.cancel();
      waiter.join();
    }
    if (t0 < 0) {
      std::printf("error epmd_did_not_start\n");
      return 1;
    }
    std::printf("lat %lld %s\n", static_cast<long long>(t1.load() - t0),
                dala::epmd::kind_name(r.kind));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "launcher" && argc == 3) return launcher(argv[2]);
    if (mode == "curve" && argc == 12) return curve(argv + 2);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dala_gate_bench: %s\n", e.what());
    return 2;
  }
  std::fprintf(stderr,
               "usage: dala_gate_bench launcher EPMD_EXE\n"
               "       dala_gate_bench curve EPMD_EXE PORT DEAD_PORT INITIAL_US MAX_US CPU_MS RUNS "
               "MIN_MS MAX_MS SEED\n");
  return 2;
}
