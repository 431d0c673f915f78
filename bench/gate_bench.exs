# The gate benchmark: how fast and how cheaply Dala.Dist gets a phone onto the network, beside
# the field's naive connect-and-sleep poll (bench/support/baseline.ex), in the same run.
#
#   make bench         # full mode: writes bench/results/latest.md and latest.csv
#   make bench-quick   # CI: small n, short waits; writes bench/tmp/quick.*; asserts no timing
#
# By hand: build the helper (cmake -DDALA_BUILD_BENCH=ON, target dala_gate_bench), then
#   ERL_EPMD_PORT=<free port, never 4369> mix run --no-start bench/gate_bench.exs [--quick]
#     [--helper PATH] [--out DIR]
#
# Everything runs on 127.0.0.1. Every epmd is started by dala_gate_bench (which sees the moment
# it first accepts) and ended by its PID; worker VMs end by themselves; the dead tunnel is a
# process of this VM. Port 4369 is refused.
Code.require_file("../test/support/net.ex", __DIR__)
Code.require_file("support/baseline.ex", __DIR__)
Code.require_file("support/measure.ex", __DIR__)

defmodule DalaBench do
  alias Dala.Dist.Epmd
  alias Dala.Test.Net
  alias DalaBench.{Baseline, Measure}

  @node :"dala_bench@127.0.0.1"
  @secret_var "DALA_BENCH_DIST_SECRET"

  # Backoff settings of the curve, {initial_us, max_us}; the first is the gate's default.
  @curve [
    {2_000, 8_000},
    {2_000, 50_000},
    {2_000, 20_000},
    {2_000, 10_000},
    {2_000, 6_000},
    {1_000, 4_000},
    {1_000, 2_000},
    {500, 1_000}
  ]

  @full %{
    mode: "full",
    latency_runs: 40,
    appear_ms: {300, 1_300},
    deadline_ms: 10_000,
    deadline_runs: 3,
    cpu_window_ms: 10_000,
    ticker_window_ms: 3_000,
    verdict_ms: 3_000,
    cookie_calls: 100_000,
    curve: @curve,
    curve_runs: 30,
    curve_cpu_ms: 3_000,
    curve_appear_ms: {300, 800}
  }

  @quick %{
    mode: "quick",
    latency_runs: 3,
    appear_ms: {100, 300},
    deadline_ms: 1_000,
    deadline_runs: 1,
    cpu_window_ms: 500,
    ticker_window_ms: 300,
    verdict_ms: 500,
    cookie_calls: 1_000,
    curve: Enum.take(@curve, 2),
    curve_runs: 3,
    curve_cpu_ms: 300,
    curve_appear_ms: {100, 200}
  }

  def main(argv) do
    {opts, _, _} =
      OptionParser.parse(argv, strict: [quick: :boolean, helper: :string, out: :string])

    cfg = if opts[:quick], do: @quick, else: @full
    out = opts[:out] || if opts[:quick], do: "bench/tmp", else: "bench/results"
    helper = Path.expand(opts[:helper] || "_build/cmake/bench/dala_gate_bench")
    File.exists?(helper) || fail("#{helper} is missing; build it with `make bench-helper`")

    port = epmd_port!()
    Logger.configure(level: :warning)
    {:ok, _} = Application.ensure_all_started(:dala)
    System.delete_env("DALA_NODE_SUFFIX")
    System.delete_env("DALA_RELEASE")
    System.put_env(@secret_var, Base.encode64(:crypto.strong_rand_bytes(32)))
    {:ok, epmd_exe} = Epmd.epmd_executable()

    # Other work on the machine skews every number here; the load average is recorded with them.
    ctx = %{
      cfg: cfg,
      port: port,
      helper: helper,
      epmd_exe: epmd_exe,
      rows: [],
      load_before: load_average()
    }

    started = System.monotonic_time(:millisecond)
    say("gate benchmark, #{cfg.mode} mode, EPMD port #{port}")

    ctx = with_launcher(ctx, &latency/1)
    ctx = deadline(ctx)

    dead_port = Net.free_port()
    dead = Net.dead_tunnel(dead_port)
    ctx = Map.put(ctx, :dead_port, dead_port)
    ctx = ctx |> verdict() |> cpu() |> ticker() |> cookie() |> curve()
    Net.stop_listener(dead)

    seconds = div(System.monotonic_time(:millisecond) - started, 1000)
    write(ctx, out, seconds)
  end

  ## 1. Detection latency

  defp latency(ctx) do
    %{cfg: cfg, port: port} = ctx
    say("1. detection latency: #{cfg.latency_runs} runs")
    cookie = Dala.Dist.cookie_from_env(@secret_var, "dala_bench")

    samples =
      for i <- 1..cfg.latency_runs do
        gate = Task.async(fn -> stamp(Epmd.wait(10_000, port: port)) end)
        baseline = Task.async(fn -> stamp(Baseline.wait(port, 10_000)) end)

        :ok =
          Dala.Dist.ensure_started(
            platform: :android,
            delay: 0,
            node: @node,
            cookie: cookie,
            dist_port: Net.free_port(),
            epmd_timeout: 10_000
          )

        alive = Task.async(fn -> stamp({Dala.Dist.await(20_000), Node.alive?()}) end)

        Process.sleep(uniform(cfg.appear_ms))
        t0 = launcher_start(ctx, port)
        [g, b, a] = Task.await_many([gate, baseline, alive], 20_000)
        :ok = Dala.Dist.stop()
        launcher_stop(ctx)

        {{:ready, _}, tg} = g
        {{:ready, _}, tb} = b
        {{{:ok, @node}, true}, ta} = a
        sample = %{gate: ms(tg - t0), alive: ms(ta - t0), baseline: ms(tb - t0)}
        progress(i, cfg.latency_runs)
        sample
      end

    rows =
      for {impl, key} <- [
            {"dala gate: ready", :gate},
            {"dala: Node.alive? true", :alive},
            {"baseline: ready", :baseline}
          ],
          {stat, p} <- [{"p50", 50}, {"p95", 95}, {"max", 100}] do
        values = Enum.map(samples, & &1[key])
        row("latency", "#{stat}_ms", impl, "n=#{length(samples)}", Measure.percentile(values, p))
      end

    overhead = Enum.map(samples, &(&1.alive - &1.gate))

    extra = [
      row(
        "latency",
        "p50_ms",
        "dala: Node.alive? minus gate ready",
        "",
        Measure.percentile(overhead, 50)
      )
    ]

    add(ctx, rows ++ extra)
  end

  defp stamp(result), do: {result, Measure.os_mono_ns()}

  ## 2. Deadline accuracy

  defp deadline(ctx) do
    %{cfg: cfg} = ctx
    say("2. deadline accuracy: #{cfg.deadline_runs} x #{cfg.deadline_ms} ms, nothing listening")
    port = Net.free_port()

    runs =
      for _ <- 1..cfg.deadline_runs do
        g = Task.async(fn -> timed(fn -> Epmd.wait(cfg.deadline_ms, port: port) end) end)
        b = Task.async(fn -> timed(fn -> Baseline.wait(port, cfg.deadline_ms) end) end)

        [{{:timeout, _}, gms}, {{:timeout, _}, bms}] =
          Task.await_many([g, b], cfg.deadline_ms * 3)

        {gms, bms}
      end

    rows =
      for {impl, values} <- [
            {"dala gate", Enum.map(runs, &elem(&1, 0))},
            {"baseline", Enum.map(runs, &elem(&1, 1))}
          ] do
        worst = Enum.max_by(values, &abs(&1 - cfg.deadline_ms))

        [
          row("deadline", "mean_ms", impl, "asked #{cfg.deadline_ms} ms", mean(values)),
          row(
            "deadline",
            "worst_error_ms",
            impl,
            "asked #{cfg.deadline_ms} ms",
            worst - cfg.deadline_ms
          )
        ]
      end

    add(ctx, List.flatten(rows))
  end

  defp timed(fun) do
    t = System.monotonic_time(:microsecond)
    result = fun.()
    {result, (System.monotonic_time(:microsecond) - t) / 1000}
  end

  ## 5. Dead tunnel verdict (run before the CPU section, which uses the same tunnel)

  defp verdict(ctx) do
    %{cfg: cfg, dead_port: dead} = ctx
    say("5. dead tunnel verdict: #{cfg.verdict_ms} ms each")
    g = Task.async(fn -> Epmd.wait(cfg.verdict_ms, port: dead) end)
    b = Task.async(fn -> timed(fn -> Baseline.wait(dead, cfg.verdict_ms) end) end)
    [gate, {base, base_ms}] = Task.await_many([g, b], cfg.verdict_ms * 3)

    gate_text =
      case gate do
        {:ready, _} -> "ready (false)"
        {kind, info} -> "#{kind} after #{info.elapsed_ms} ms, last error #{info[:last_error]}"
      end

    base_text =
      case base do
        {:ready, n} -> "ready (false) after #{Float.round(base_ms, 1)} ms, attempt #{n}"
        {:timeout, n} -> "timeout after #{n} attempts"
      end

    add(ctx, [
      row(
        "dead_tunnel",
        "false_ready",
        "dala gate",
        gate_text,
        if(elem(gate, 0) == :ready, do: 1, else: 0)
      ),
      row(
        "dead_tunnel",
        "false_ready",
        "baseline",
        base_text,
        if(elem(base, 0) == :ready, do: 1, else: 0)
      )
    ])
  end

  ## 3. CPU while waiting, 4. scheduler impact: each in a fresh worker VM

  defp cpu(ctx) do
    %{cfg: cfg} = ctx
    say("3. CPU while waiting: worker VMs, #{cfg.cpu_window_ms} ms windows")

    rows =
      for {impl, target, port} <- worker_cases(ctx) do
        r = worker(ctx, [], "cpu", {impl, target}, port, cfg.cpu_window_ms)
        pct = 100 * r["cpu_ns"] / r["wall_ns"]
        stat_pct = 100 * r["stat_cpu_ns"] / r["wall_ns"]

        [
          row("cpu", "pct_of_core", impl_name(impl), target, pct),
          row("cpu", "pct_of_core_proc_stat", impl_name(impl), target, stat_pct)
        ]
      end

    add(ctx, List.flatten(rows))
  end

  defp ticker(ctx) do
    %{cfg: cfg} = ctx
    say("4. scheduler impact: +S 1 worker VMs, #{cfg.ticker_window_ms} ms of a 1 ms ticker")

    rows =
      for {impl, target, port} <- worker_cases(ctx) do
        r = worker(ctx, ["--erl", "+S 1"], "ticker", {impl, target}, port, cfg.ticker_window_ms)
        1 = r["schedulers"]
        row("ticker", "max_gap_ms", impl_name(impl), target, r["max_gap_us"] / 1000)
      end

    add(ctx, rows)
  end

  defp worker_cases(ctx) do
    nothing = Net.free_port()

    # The baseline does not wait through a dead tunnel: it says ready at the first connect.
    [
      {"idle", "no wait", nothing},
      {"gate", "nothing listening", nothing},
      {"gate", "dead tunnel", ctx.dead_port},
      {"baseline", "nothing listening", nothing}
    ]
  end

  defp impl_name("idle"), do: "idle VM (control)"
  defp impl_name("gate"), do: "dala gate"
  defp impl_name("baseline"), do: "baseline"

  defp worker(ctx, erl, mode, {impl, target}, port, window) do
    args =
      erl ++
        ["-pa", ebin(), Path.join(__DIR__, "support/worker.exs")] ++
        [mode, impl, Integer.to_string(port), Integer.to_string(window)]

    env = [
      {"ERL_EPMD_PORT", Integer.to_string(ctx.port)},
      {"ERL_FLAGS", nil},
      {"ELIXIR_ERL_OPTIONS", nil}
    ]

    case System.cmd("elixir", args, env: env, stderr_to_stdout: true) do
      {out, 0} ->
        line =
          out |> String.split("\n") |> Enum.find(&String.starts_with?(&1, "result ")) ||
            fail("worker printed no result:\n#{out}")

        r =
          line
          |> String.split()
          |> tl()
          |> Map.new(fn kv ->
            [k, v] = String.split(kv, "=", parts: 2)
            {k, if(v =~ ~r/^\d+$/, do: String.to_integer(v), else: v)}
          end)

        if r["ended_early"] != "no",
          do: fail("#{mode} #{impl} (#{target}): the wait ended inside the window: #{line}")

        r

      {out, status} ->
        fail("worker exited with #{status}:\n#{out}")
    end
  end

  defp ebin do
    case :code.lib_dir(:dala) do
      {:error, _} -> fail("the dala application is not in the code path; run `mix compile`")
      dir -> Path.join(to_string(dir), "ebin")
    end
  end

  ## 6. cookie_from_env/2

  defp cookie(ctx) do
    n = ctx.cfg.cookie_calls
    say("6. cookie_from_env/2: #{n} calls")
    for _ <- 1..100, do: Dala.Dist.cookie_from_env(@secret_var, "dala_bench")

    {us, _} =
      :timer.tc(fn ->
        for _ <- 1..n, do: Dala.Dist.cookie_from_env(@secret_var, "dala_bench")
      end)

    add(ctx, [row("cookie", "us_per_call", "Dala.Dist.cookie_from_env/2", "n=#{n}", us / n)])
  end

  ## The curve: the core gate (dala_gate_bench, no VM) with other Backoff settings

  defp curve(ctx) do
    %{cfg: cfg} = ctx
    say("curve: #{length(cfg.curve)} backoff settings, #{cfg.curve_runs} runs each")
    {lo, hi} = cfg.curve_appear_ms

    rows =
      for {{initial, max}, i} <- Enum.with_index(cfg.curve) do
        args =
          ["curve", ctx.epmd_exe, ctx.port, ctx.dead_port, initial, max, cfg.curve_cpu_ms] ++
            [cfg.curve_runs, lo, hi, 1000 + i]

        {out, status} =
          System.cmd(ctx.helper, Enum.map(args, &to_string/1), stderr_to_stdout: true)

        status == 0 || fail("dala_gate_bench curve failed (#{status}):\n#{out}")
        lines = out |> String.split("\n", trim: true) |> Enum.map(&String.split/1)

        cpu =
          for ["cpu", kind, cpu_ns, wall_ns | _] <- lines,
              into: %{},
              do: {kind, 100 * String.to_integer(cpu_ns) / String.to_integer(wall_ns)}

        lat = for ["lat", ns, "ready"] <- lines, do: ms(String.to_integer(ns))
        length(lat) == cfg.curve_runs || fail("dala_gate_bench: #{out}")
        setting = "#{initial / 1000}..#{max / 1000} ms" <> if(i == 0, do: " (default)", else: "")
        progress(i + 1, length(cfg.curve))

        [
          row("curve", "cpu_pct_nothing", "core gate", setting, cpu["none"]),
          row("curve", "cpu_pct_dead_tunnel", "core gate", setting, cpu["dead"]),
          row("curve", "ready_p50_ms", "core gate", setting, Measure.percentile(lat, 50)),
          row("curve", "ready_p95_ms", "core gate", setting, Measure.percentile(lat, 95)),
          row("curve", "ready_max_ms", "core gate", setting, Measure.percentile(lat, 100))
        ]
      end

    add(ctx, List.flatten(rows))
  end

  ## The epmd launcher (dala_gate_bench launcher): one at a time

  defp with_launcher(ctx, fun) do
    port =
      Port.open({:spawn_executable, ctx.helper}, [
        :binary,
        :exit_status,
        {:line, 1024},
        args: ["launcher", ctx.epmd_exe]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)

    ctx =
      try do
        fun.(Map.put(ctx, :launcher, port))
      after
        # EOF ends the launcher, which ends (by PID) the epmd it still runs; make sure of both.
        Port.close(port)
        wait_gone(os_pid)
      end

    Map.delete(ctx, :launcher)
  end

  defp launcher_start(ctx, port) do
    true = Port.command(ctx.launcher, "start #{port}\n")

    case launcher_reply(ctx) do
      ["up", _os_pid, t0] -> String.to_integer(t0)
      other -> fail("launcher: #{Enum.join(other, " ")}")
    end
  end

  defp launcher_stop(ctx) do
    true = Port.command(ctx.launcher, "stop\n")
    ["down"] = launcher_reply(ctx)
  end

  defp launcher_reply(%{launcher: port}) do
    receive do
      {^port, {:data, {:eol, line}}} -> String.split(line)
      {^port, {:exit_status, s}} -> fail("launcher exited with #{s}")
    after
      10_000 -> fail("launcher did not answer")
    end
  end

  defp wait_gone(os_pid, tries \\ 200) do
    cond do
      not File.exists?("/proc/#{os_pid}") -> :ok
      tries == 0 -> System.cmd("kill", ["-KILL", "#{os_pid}"])
      true -> Process.sleep(10) && wait_gone(os_pid, tries - 1)
    end
  end

  ## Output

  defp write(ctx, out, seconds) do
    File.mkdir_p!(out)
    meta = machine(ctx, seconds)
    md = markdown(ctx, meta)
    File.write!(Path.join(out, file(ctx, "md")), md)
    File.write!(Path.join(out, file(ctx, "csv")), csv(ctx, meta))
    IO.puts("\n" <> md)
    say("wrote #{Path.join(out, file(ctx, "md"))} and .csv (#{seconds} s)")
  end

  defp file(%{cfg: %{mode: "full"}}, ext), do: "latest.#{ext}"
  defp file(%{cfg: %{mode: mode}}, ext), do: "#{mode}.#{ext}"

  defp machine(ctx, seconds) do
    cpu_model =
      "/proc/cpuinfo"
      |> File.read!()
      |> String.split("\n")
      |> Enum.find_value("unknown", fn line ->
        case String.split(line, ":", parts: 2) do
          ["model name" <> _, v] -> String.trim(v)
          _ -> nil
        end
      end)

    {commit, 0} = System.cmd("git", ["rev-parse", "--short", "HEAD"])
    {dirty, 0} = System.cmd("git", ["status", "--porcelain", "--untracked-files=no"])

    [
      {"mode", ctx.cfg.mode},
      {"cpu", cpu_model},
      {"cores", "#{:erlang.system_info(:logical_processors_available)}"},
      {"kernel", String.trim(elem(System.cmd("uname", ["-sr"]), 0))},
      {"otp", "#{:erlang.system_info(:otp_release)} (erts #{:erlang.system_info(:version)})"},
      {"elixir", System.version()},
      {"commit", String.trim(commit) <> if(dirty == "", do: "", else: " (with local changes)")},
      {"date", DateTime.utc_now() |> DateTime.truncate(:second) |> DateTime.to_iso8601()},
      {"duration_s", "#{seconds}"},
      {"load_before", ctx.load_before},
      {"load_after", load_average()}
    ]
  end

  defp markdown(ctx, meta) do
    rows = Enum.reverse(ctx.rows)
    cfg = ctx.cfg
    m = Map.new(meta)
    get = fn section, metric, impl, setting -> value(rows, section, metric, impl, setting) end

    lat = fn impl, stat -> get.("latency", "#{stat}_ms", impl, nil) end
    cpu = fn impl, target -> get.("cpu", "pct_of_core", impl, target) end
    stat_cpu = fn impl, target -> get.("cpu", "pct_of_core_proc_stat", impl, target) end
    gap = fn impl, target -> get.("ticker", "max_gap_ms", impl, target) end
    dl = fn impl, metric -> get.("deadline", metric, impl, nil) end

    gate_cpu = max(cpu.("dala gate", "nothing listening"), cpu.("dala gate", "dead tunnel"))
    gate_gap = max(gap.("dala gate", "nothing listening"), gap.("dala gate", "dead tunnel"))
    gate_false = get.("dead_tunnel", "false_ready", "dala gate", nil)
    gate_err = abs(dl.("dala gate", "worst_error_ms"))

    lat_rows =
      for impl <- ["dala gate: ready", "dala: Node.alive? true", "baseline: ready"] do
        "| #{impl} | #{f(lat.(impl, "p50"))} | #{f(lat.(impl, "p95"))} | #{f(lat.(impl, "max"))} |"
      end

    no_wait = "— (says ready at once, does not wait)"

    cpu_rows = [
      "| dala gate | #{f(cpu.("dala gate", "nothing listening"), 2)} (#{f(stat_cpu.("dala gate", "nothing listening"), 1)}) " <>
        "| #{f(cpu.("dala gate", "dead tunnel"), 2)} (#{f(stat_cpu.("dala gate", "dead tunnel"), 1)}) |",
      "| baseline | #{f(cpu.("baseline", "nothing listening"), 2)} (#{f(stat_cpu.("baseline", "nothing listening"), 1)}) | #{no_wait} |"
    ]

    gap_rows = [
      "| dala gate | #{f(gap.("dala gate", "nothing listening"))} | #{f(gap.("dala gate", "dead tunnel"))} |",
      "| baseline | #{f(gap.("baseline", "nothing listening"))} | #{no_wait} |"
    ]

    dead_rows =
      for impl <- ["dala gate", "baseline"] do
        r = Enum.find(rows, &(&1.section == "dead_tunnel" and &1.impl == impl))
        "| #{impl} | #{if r.value == 1, do: "**yes** (false ready)", else: "no"} | #{r.setting} |"
      end

    start_overhead = get.("latency", "p50_ms", "dala: Node.alive? minus gate ready", nil)

    curve_rows =
      for setting <-
            rows |> Enum.filter(&(&1.section == "curve")) |> Enum.map(& &1.setting) |> Enum.uniq() do
        c = fn metric -> get.("curve", metric, "core gate", setting) end

        "| #{setting} | #{f(c.("ready_p50_ms"))} | #{f(c.("ready_p95_ms"))} | #{f(c.("ready_max_ms"))} " <>
          "| #{f(c.("ready_p95_ms") + start_overhead)} " <>
          "| #{f(c.("cpu_pct_nothing"), 2)} | #{f(c.("cpu_pct_dead_tunnel"), 2)} |"
      end

    """
    # Gate benchmark (#{cfg.mode} mode)

    #{m["cpu"]}, #{m["cores"]} cores, #{m["kernel"]}; OTP #{m["otp"]}, Elixir #{m["elixir"]};
    commit #{m["commit"]}; #{m["date"]}; #{m["duration_s"]} s; load average before / after: #{m["load_before"]} / #{m["load_after"]}. Command: `make #{if cfg.mode == "full", do: "bench", else: "bench-quick"}`.
    Baseline: the field's published wait (`:gen_tcp.connect` to 127.0.0.1 with a 200 ms timeout;
    on failure sleep 500 ms and charge 700 ms to a 10 s budget; a connect is "ready").

    ## Targets

    | Target | Measured (dala) | Met | Baseline |
    |---|---|---|---|
    | EPMD up → `Node.alive?` p95 ≤ 10 ms | #{f(lat.("dala: Node.alive? true", "p95"))} ms | #{met(lat.("dala: Node.alive? true", "p95") <= 10)} | #{f(lat.("baseline: ready", "p95"))} ms (to connect only) |
    | CPU while waiting ≤ 1 % of a core | #{f(gate_cpu, 2)} % (idle VM: #{f(cpu.("idle VM (control)", "no wait"), 2)} %) | #{met(gate_cpu <= 1)} | #{f(cpu.("baseline", "nothing listening"), 2)} % |
    | Deadline error ≤ 50 ms (asked #{cfg.deadline_ms} ms) | #{f(gate_err)} ms | #{met(gate_err <= 50)} | #{f(abs(dl.("baseline", "worst_error_ms")))} ms |
    | 1 ms ticker gap ≤ 5 ms (`+S 1`) | #{f(gate_gap)} ms | #{met(gate_gap <= 5)} | #{f(gap.("baseline", "nothing listening"))} ms |
    | No false ready through a dead tunnel | #{if gate_false == 0, do: "none", else: "false ready"} | #{met(gate_false == 0)} | #{if get.("dead_tunnel", "false_ready", "baseline", nil) == 1, do: "false ready", else: "none"} |

    ## 1. Detection latency: a real epmd appears #{elem(cfg.appear_ms, 0)}..#{elem(cfg.appear_ms, 1)} ms into the wait (ms from its first accept)

    | n = #{cfg.latency_runs} | p50 | p95 | max |
    |---|---|---|---|
    #{Enum.join(lat_rows, "\n")}

    `Node.alive?` is `Dala.Dist.ensure_started(platform: :android, delay: 0)` in this VM, stamped
    when `Dala.Dist.await/1` returns `{:ok, node}` with `Node.alive?()` true; its p50 beyond its
    own gate's ready (pre-checks, `:net_kernel` start): #{f(get.("latency", "p50_ms", "dala: Node.alive? minus gate ready", nil))} ms.
    The three wait side by side on the same epmd start.

    ## 2. Deadline accuracy: nothing listens, a #{cfg.deadline_ms} ms wait (#{cfg.deadline_runs} runs)

    | | mean length (ms) | worst error (ms) |
    |---|---|---|
    | dala gate | #{f(dl.("dala gate", "mean_ms"))} | #{f(dl.("dala gate", "worst_error_ms"))} |
    | baseline | #{f(dl.("baseline", "mean_ms"))} | #{f(dl.("baseline", "worst_error_ms"))} |

    ## 3. CPU while waiting: % of one core used by the whole VM (#{cfg.cpu_window_ms} ms window)

    | | nothing listening | dead tunnel |
    |---|---|---|
    #{Enum.join(cpu_rows, "\n")}

    Summed per-thread schedstat (ns); in brackets `/proc/self/stat` utime+stime (10 ms ticks).
    The same VM waiting for nothing: #{f(cpu.("idle VM (control)", "no wait"), 2)} % (#{f(stat_cpu.("idle VM (control)", "no wait"), 1)}). The dead tunnel runs in
    the benchmark's VM, so its accept cost is not in these numbers.

    ## 4. Scheduler impact: largest gap of a 1 ms ticker on a `+S 1` VM (ms, #{cfg.ticker_window_ms} ms window)

    | | nothing listening | dead tunnel |
    |---|---|---|
    #{Enum.join(gap_rows, "\n")}

    The same VM waiting for nothing: #{f(gap.("idle VM (control)", "no wait"))} ms.

    ## 5. Dead tunnel (accepts, then closes): does it say ready? (#{cfg.verdict_ms} ms wait)

    | | ready? | result |
    |---|---|---|
    #{Enum.join(dead_rows, "\n")}

    ## 6. `Dala.Dist.cookie_from_env/2`

    #{f(get.("cookie", "us_per_call", "Dala.Dist.cookie_from_env/2", nil), 2)} µs per call (mean of #{cfg.cookie_calls} calls, secret set).

    ## Backoff: latency against CPU (the core gate in `dala_gate_bench`, no VM)

    Sleep between attempts starts at the first value and doubles up to the second. Latency: a real
    epmd appears #{elem(cfg.curve_appear_ms, 0)}..#{elem(cfg.curve_appear_ms, 1)} ms into the wait, #{cfg.curve_runs} runs; CPU: the process
    over a #{cfg.curve_cpu_ms} ms wait. The `Node.alive?` estimate adds the measured p50 of section 1's
    start beyond the gate (#{f(start_overhead)} ms) to the gate's p95.

    | backoff | ready p50 (ms) | p95 | max | est. `Node.alive?` p95 | CPU % nothing listening | CPU % dead tunnel |
    |---|---|---|---|---|---|---|
    #{Enum.join(curve_rows, "\n")}
    """
  end

  defp csv(ctx, meta) do
    header = "section,metric,implementation,setting,value"
    meta_lines = for {k, v} <- meta, do: Enum.join(["meta", k, "", "", esc(v)], ",")

    lines =
      for r <- Enum.reverse(ctx.rows),
          do: Enum.join([r.section, r.metric, esc(r.impl), esc(r.setting), f(r.value, 3)], ",")

    Enum.join([header | meta_lines] ++ lines, "\n") <> "\n"
  end

  defp esc(v) do
    v = to_string(v)
    if v =~ ~r/[",\n]/, do: "\"" <> String.replace(v, "\"", "\"\"") <> "\"", else: v
  end

  ## Helpers

  defp row(section, metric, impl, setting, value),
    do: %{section: section, metric: metric, impl: impl, setting: setting, value: value}

  defp add(ctx, rows), do: %{ctx | rows: Enum.reverse(rows) ++ ctx.rows}

  defp value(rows, section, metric, impl, setting) do
    r =
      Enum.find(rows, fn r ->
        r.section == section and r.metric == metric and r.impl == impl and
          (setting == nil or r.setting == setting)
      end)

    (r || fail("no result #{section}/#{metric}/#{impl}/#{setting}")).value
  end

  defp f(v, digits \\ 1)
  defp f(v, _digits) when is_integer(v), do: Integer.to_string(v)
  defp f(v, digits) when is_float(v), do: :erlang.float_to_binary(v, decimals: digits)

  defp met(true), do: "yes"
  defp met(false), do: "**no**"

  defp ms(ns), do: ns / 1_000_000
  defp mean(values), do: Enum.sum(values) / length(values)
  defp uniform({lo, hi}), do: lo + :rand.uniform(hi - lo + 1) - 1

  defp epmd_port! do
    case System.get_env("ERL_EPMD_PORT") do
      nil -> fail("set ERL_EPMD_PORT to a free port (never 4369)")
      _ -> :ok
    end

    port = Epmd.port()
    port == 4369 && fail("the benchmark never uses port 4369")

    case Epmd.names(port: port, timeout: 500) do
      {:ok, _} -> fail("something answers on port #{port}; pick a free ERL_EPMD_PORT")
      {:error, _} -> port
    end
  end

  # 1, 5 and 15 minute load averages (the 1-minute one lags by about a minute).
  defp load_average,
    do: File.read!("/proc/loadavg") |> String.split() |> Enum.take(3) |> Enum.join(" ")

  defp say(text), do: IO.puts("[bench] " <> text)
  defp progress(i, n), do: if(rem(i, 10) == 0 or i == n, do: IO.puts("[bench]   #{i}/#{n}"))

  defp fail(text) do
    IO.puts(:stderr, "[bench] " <> text)
    System.halt(1)
  end
end

DalaBench.main(System.argv())
