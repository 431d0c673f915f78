# The commands of the README:
#   make demo         - installs what is missing, builds, and runs the Android dev-loop demo
#   make test         - installs what is missing, builds, and runs every test and check
#   make bench        - the gate benchmark, full mode (minutes); writes bench/results/latest.*
#   make bench-quick  - the same benchmark with small n and short waits (CI; asserts no timing)
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

.PHONY: deps demo test native-test native-asan-test format-check elixir-test rebar-test \
        bench bench-quick bench-helper

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

test: deps native-test native-asan-test format-check elixir-test rebar-test

native-test:
	cmake -S . -B $(BUILD)/test -DDALA_WERROR=ON -DDALA_BUILD_NIF=OFF >/dev/null
	cmake --build $(BUILD)/test --parallel $(JOBS)
	cd $(BUILD)/test && ctest --output-on-failure

native-asan-test:
	cmake -S . -B $(BUILD)/asan -DDALA_BUILD_NIF=OFF -DDALA_SANITIZE=ON >/dev/null
	cmake --build $(BUILD)/asan --parallel $(JOBS)
	cd $(BUILD)/asan && ctest --output-on-failure

format-check:
	clang-format --dry-run -Werror c_src/*/*.cpp c_src/*/*.h
	mix format --check-formatted

elixir-test:
	DALA_WERROR=1 MIX_ENV=test mix compile --warnings-as-errors
	DALA_WERROR=1 ERL_EPMD_PORT=$(FREE_PORT) mix test --warnings-as-errors

rebar-test:
	rebar3 compile
	erl -noshell -pa _build/default/lib/dala/ebin \
	  -eval 'host = dala_dist_nif:platform(), io:format("rebar3 build: dala_dist_nif:platform() = host~n"), halt().'

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
