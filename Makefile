# The commands of the README:
#   make demo         - installs what is missing, builds, and runs the Android dev-loop demo
#   make test         - installs what is missing, builds, and runs every test and check
#   make bench        - the gate benchmark, full mode (minutes); writes bench/results/latest.*
#   make bench-quick  - the same benchmark with small n and short waits (asserts no timing)
# Both are safe to re-run; installing is quiet when nothing is missing.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

# Debian 12 packages the build, the tests and the checks use.
PACKAGES := cmake g++ make pkg-config erlang-dev erlang-base elixir libsodium-dev catch2 \
            rebar3 clang clang-format libclang-rt-14-dev openssl

BUILD := _build/cmake
JOBS ?= 2
# A free loopback port for the test VM's EPMD (never the machine's default 4369).
FREE_PORT = $(shell erl -noshell -eval '{ok,S}=gen_tcp:listen(0,[{ip,{127,0,0,1}}]),{ok,P}=inet:port(S),io:format("~b",[P]),halt().')

.PHONY: deps demo test native-checks elixir-checks native-test native-asan-test sanitize-build \
        format-check elixir-test rebar-test fuzz elixir-asan-test fleet bench bench-quick bench-helper

deps:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The demo's VM gets a private EPMD port (the "laptop's" EPMD; never 4369). +Bd: Ctrl-C ends the
# VM at once, and the demo's reaper then ends the epmd and the phone BEAM it started, by PID.
demo: deps
	mix compile
	ERL_EPMD_PORT=$(FREE_PORT) ERL_FLAGS="+Bd" mix run --no-start examples/android_dev_loop.exs

# Two pipelines side by side: the native checks (compiler-bound) and the ExUnit runs (mostly
# waiting on sockets, peers and timers). The native one runs at the lowest CPU priority, so the
# test VMs get a core whenever they want one and their timing stays what it is on an idle
# machine. Output is kept per pipeline (--output-sync). rebar-test is not in the list:
# test/consumer_app_test.exs builds a rebar3 project with this checkout in _checkouts and loads
# the NIF from erl (in elixir-test).
test: deps format-check
	$(MAKE) --no-print-directory -j2 --output-sync=recurse native-checks elixir-checks

native-checks:
	nice -n 19 $(MAKE) --no-print-directory native-test native-asan-test fuzz

elixir-checks:
	$(MAKE) --no-print-directory elixir-test elixir-asan-test

native-test:
	cmake -S . -B $(BUILD)/test -DDALA_WERROR=ON -DDALA_BUILD_NIF=OFF >/dev/null
	cmake --build $(BUILD)/test --parallel $(JOBS)
	cd $(BUILD)/test && ctest --output-on-failure

# One clang tree, built with ASan and UBSan (UB aborts), holds both the sanitised Catch2 suite
# and the libFuzzer targets, so the core is compiled once for the two.
SAN_BUILD := $(BUILD)/sanitize

sanitize-build:
	CC=clang CXX=clang++ cmake -S . -B $(SAN_BUILD) -DDALA_FUZZ=ON -DDALA_BUILD_NIF=OFF \
	  -DDALA_WERROR=ON -DCMAKE_CXX_FLAGS=-fno-sanitize-recover=all >/dev/null
	cmake --build $(SAN_BUILD) --parallel $(JOBS)

native-asan-test: sanitize-build
	cd $(SAN_BUILD) && ctest --output-on-failure

format-check:
	clang-format --dry-run -Werror c_src/*/*.cpp c_src/*/*.h cross/*.cpp cross/*.h
	mix format --check-formatted

elixir-test:
	DALA_WERROR=1 MIX_ENV=test mix compile --warnings-as-errors
	DALA_WERROR=1 ERL_EPMD_PORT=$(FREE_PORT) mix test --warnings-as-errors

rebar-test:
	rebar3 compile
	erl -noshell -pa _build/default/lib/dala/ebin \
	  -eval 'host = dala_dist_nif:platform(), io:format("rebar3 build: dala_dist_nif:platform() = host~n"), halt().'

# libFuzzer over the core's parsers and input rules (c_src/fuzz/fuzz_*.cpp), built with clang,
# ASan and UBSan. Each target starts from its seed corpus in c_src/fuzz/corpus/<target>/ (read
# only; new inputs go to the build directory) and runs FUZZ_RUNS inputs or FUZZ_SECONDS seconds,
# whichever ends first. A crash input is written to $(BUILD)/sanitize/<target>-crash-*.
FUZZ_TARGETS := fuzz_epmd_names fuzz_epmd_port2 fuzz_epmd_kill fuzz_node_name fuzz_cookie
FUZZ_RUNS ?= 200000
FUZZ_SECONDS ?= 40

# The targets run side by side (each is single-threaded), every one to its end, then the first
# failure is reported.
fuzz: sanitize-build
	for t in $(FUZZ_TARGETS); do \
	  rm -rf $(SAN_BUILD)/work/$$t && mkdir -p $(SAN_BUILD)/work/$$t; \
	  $(SAN_BUILD)/$$t -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=$(SAN_BUILD)/$$t- -print_final_stats=1 \
	    $(SAN_BUILD)/work/$$t c_src/fuzz/corpus/$$t > $(SAN_BUILD)/$$t.log 2>&1 & \
	  echo $$! > $(SAN_BUILD)/$$t.pid; \
	done; \
	failed=0; \
	for t in $(FUZZ_TARGETS); do \
	  if wait $$(cat $(SAN_BUILD)/$$t.pid); then \
	    echo "$$t: $$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' $(SAN_BUILD)/$$t.log)"; \
	  else \
	    tail -n 40 $(SAN_BUILD)/$$t.log; echo "$$t: FAILED (log: $(SAN_BUILD)/$$t.log)"; failed=1; \
	  fi; \
	done; \
	exit $$failed

# The ExUnit suite against the NIF built with -fsanitize=address,undefined (g++, so gcc's
# runtimes). The BEAM itself is not instrumented, so the runtimes are preloaded into it (and,
# through the environment, into the peers and epmd it starts):
#   detect_leaks=0     LeakSanitizer would report the VM's own allocations, which it keeps
#                      until exit by design; fd and memory leaks of ours are tested directly.
#   abort_on_error=1   an ASan report ends the VM, so the run fails.
#   halt_on_error=1    the same for UBSan (the NIF is also built with -fno-sanitize-recover).
# The sanitised library has its own build directory (_build/test/native/host-sanitize); the last
# step puts the normal library back into _build/test/lib/dala/priv/, whatever the tests did.
# The run is narrowed to the test files that drive the NIF inside the test VM (ASAN_TESTS); the
# demo, the laptop tasks, the fleet and the consumer apps mostly drive other OS processes and
# run in elixir-test only.
ASAN_TESTS := $(addprefix test/,bad_input_test.exs cookie_test.exs epmd_test.exs \
              identity_test.exs lifecycle_test.exs lifecycle_races_test.exs faults_test.exs \
              nif_load_test.exs platform_test.exs port_test.exs soak_test.exs)
ASAN_PRELOAD = $(shell g++ -print-file-name=libasan.so) $(shell g++ -print-file-name=libubsan.so)

elixir-asan-test:
	DALA_SANITIZE=1 MIX_ENV=test mix compile
	status=0; \
	DALA_SANITIZE=1 ERL_EPMD_PORT=$(FREE_PORT) LD_PRELOAD="$(ASAN_PRELOAD)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  mix test --exclude consumer $(ASAN_TESTS) || status=$$?; \
	MIX_ENV=test mix compile; \
	exit $$status

# The full fleet: 50 phone BEAMs through one EPMD (CI runs 10 as part of elixir-test).
FLEET_SIZE ?= 50

fleet:
	MIX_ENV=test mix compile
	DALA_FLEET_SIZE=$(FLEET_SIZE) ERL_EPMD_PORT=$(FREE_PORT) mix test --only fleet test/fleet_test.exs

# The benchmark's VM gets a private EPMD port too; dala_gate_bench (the gate without a VM, and the
# launcher that starts each epmd and sees when it first accepts) is built only here.
bench-helper:
	cmake -S . -B $(BUILD)/bench -DDALA_WERROR=ON -DDALA_BUILD_NIF=OFF -DDALA_BUILD_TESTS=OFF \
	  -DDALA_BUILD_BENCH=ON >/dev/null
	cmake --build $(BUILD)/bench --parallel $(JOBS)

bench: deps bench-helper
	mix compile
	ERL_EPMD_PORT=$(FREE_PORT) mix run --no-start bench/gate_bench.exs --helper $(BUILD)/bench/dala_gate_bench

bench-quick: deps bench-helper
	mix compile
	ERL_EPMD_PORT=$(FREE_PORT) mix run --no-start bench/gate_bench.exs --quick \
	  --helper $(BUILD)/bench/dala_gate_bench

# The phone builds (cross/run.sh; README "Phones: the static NIF and cross builds"). Both install
# what they need first (cross/setup.sh: the aarch64 toolchain, qemu-user, arm64 libsodium through
# apt; Debian's arm64 Erlang unpacked into _build/cross/sysroot; qemu registered with binfmt_misc).
#   cross-ci    Catch2 cross-built for arm64 and run under qemu; the static NIF archive for host
#               and arm64 linked into cross/static_harness.cpp and run; nm symbol checks; sizes
#   cross-test  all of cross-ci, the ExUnit suite on an arm64 BEAM under qemu-user, and the
#               demo with an arm64 phone BEAM attached from this amd64 VM over :erpc
.PHONY: cross-ci cross-test consumer-test

cross-ci: deps
	JOBS=$(JOBS) cross/run.sh ci

cross-test: deps
	JOBS=$(JOBS) cross/run.sh test

# A throwaway Mix app that depends on this checkout by path (the tree stays unchanged, the NIF
# lands in the app's _build) and the missing-tool messages (a PATH without cmake, ...).
consumer-test: deps
	MIX_ENV=test mix compile
	ERL_EPMD_PORT=$(FREE_PORT) mix test test/consumer_app_test.exs test/nif_symbols_test.exs
