defmodule Dala.SoakTest do
  # A bounded concurrency soak of the lifecycle (issue 13): processes doing random
  # ensure_started/stop/await/status, with lifecycle server kills and EPMD restarts, against a
  # real epmd on this VM's private port. After every step: status/0 agrees with Node.alive?/0,
  # await(t) returns within t + 50 ms; at the end nothing leaked (processes, ports, fds, atoms,
  # epmds).
  #
  # Sized for the suite (20 processes x 200 operations, a few seconds here; on a slower build,
  # e.g. the sanitized one, the processes stop early at DALA_SOAK_SECONDS, 20 by default). Run
  # it longer with
  #   DALA_SOAK_PROCS=40 DALA_SOAK_OPS=5000 DALA_SOAK_SECONDS=600 ERL_EPMD_PORT=<free port> \
  #     mix test --only soak
  use ExUnit.Case, async: false
  @moduletag :vm_dist
  @moduletag :soak
  @moduletag timeout: 600_000

  alias Dala.Dist
  alias Dala.Dist.Epmd
  alias Dala.Test.{DistCase, Net}

  @secret_var "DALA_SOAK_TEST_SECRET"
  @await_slack_ms 50

  setup do
    DistCase.context(@secret_var, "soak_app", "soak")
  end

  defp env_int(name, default) do
    case System.get_env(name) do
      nil -> default
      value -> String.to_integer(value)
    end
  end

  # The EPMD, owned by an Agent so that any process can restart it, one restart at a time.
  defp start_epmd_keeper(port) do
    {:ok, keeper} = Agent.start_link(fn -> Net.start_epmd(port) end)
    keeper
  end

  defp restart_epmd(keeper, port) do
    Agent.update(keeper, fn os_pid ->
      Net.stop_epmd(os_pid)
      Net.start_epmd(port)
    end)
  end

  # At most one server kill per 2 s (the supervisor allows 3 restarts in 5 s).
  defp maybe_kill_server(limiter) do
    now = System.monotonic_time(:millisecond)

    go? =
      Agent.get_and_update(limiter, fn last ->
        if last == nil or now - last > 2_000, do: {true, now}, else: {false, last}
      end)

    if go? do
      case Process.whereis(Dala.Dist.Server) do
        nil -> :ok
        pid -> Process.exit(pid, :kill)
      end
    end
  end

  defp step(op, ctx, names, keeper, limiter) do
    case op do
      :start ->
        node = Enum.random(names)

        opts = [
          platform: :android,
          node: node,
          cookie: ctx.cookie,
          delay: Enum.random([0, 0, 5, 20]),
          epmd_timeout: Enum.random(50..300),
          dist_port: ctx.dist_port
        ]

        assert Dist.ensure_started(opts) == :ok

      :ios ->
        assert Dist.ensure_started(platform: :ios) == :ok

      :stop ->
        assert Dist.stop() == :ok

      :await ->
        t = Enum.random(0..100)
        t0 = System.monotonic_time(:millisecond)
        result = Dist.await(t)
        elapsed = System.monotonic_time(:millisecond) - t0
        assert elapsed <= t + @await_slack_ms, "await(#{t}) took #{elapsed} ms"
        assert match?({:ok, _}, result) or match?({:error, _}, result)

      :status ->
        :ok

      :kill_server ->
        maybe_kill_server(limiter)

      :restart_epmd ->
        restart_epmd(keeper, ctx.epmd_port)
    end

    DistCase.assert_truthful()
  end

  # No single operation may hang: the longest legitimate one is a stop/0 that waits for a
  # registration OTP gives up on after 10 s, plus EPMD dropping the name.
  defp timed_step(op, ctx, names, keeper, limiter) do
    t0 = System.monotonic_time(:millisecond)
    step(op, ctx, names, keeper, limiter)
    elapsed = System.monotonic_time(:millisecond) - t0
    assert elapsed < 15_000, "#{op} took #{elapsed} ms"
  end

  @ops List.duplicate(:start, 6) ++
         List.duplicate(:stop, 4) ++
         List.duplicate(:await, 6) ++
         List.duplicate(:status, 4) ++ [:ios, :kill_server, :restart_epmd]

  test "random operations from many processes: the status never lies, nothing leaks", ctx do
    procs = env_int("DALA_SOAK_PROCS", 20)
    ops = env_int("DALA_SOAK_OPS", 200)
    budget_ms = env_int("DALA_SOAK_SECONDS", 20) * 1_000
    uniq = System.unique_integer([:positive])
    names = for i <- 1..3, do: :"soak#{i}_#{uniq}@127.0.0.1"

    keeper = start_epmd_keeper(ctx.epmd_port)
    {:ok, limiter} = Agent.start_link(fn -> nil end)

    # Warm up: every kind of operation once (modules get loaded, kernel processes started,
    # which makes atoms and processes once), then take the baseline.
    :ok = Dist.ensure_started(platform: :android, node: hd(names), cookie: ctx.cookie, delay: 0)
    assert {:ok, _} = Dist.await(5_000)

    for op <- Enum.uniq(@ops) do
      step(op, ctx, names, keeper, limiter)
      assert DistCase.eventually(fn -> Process.whereis(Dala.Dist.Server) end)
    end

    Agent.update(limiter, fn _ -> System.monotonic_time(:millisecond) end)
    assert Dist.stop() == :ok
    # What crash reports and inspect need is loaded lazily, once (each module brings atoms).
    Logger.flush()

    for m <-
          [Logger.Translator, :io_lib_format, :io_lib_pretty, :sys, :gen_server, Inspect.Map] ++
            [Inspect.List, Inspect.Integer, Inspect.Atom, Inspect.Tuple, Inspect.PID] do
      Code.ensure_loaded!(m)
    end

    baseline = counts()
    loaded = MapSet.new(:code.all_loaded(), &elem(&1, 0))

    stop_at = System.monotonic_time(:millisecond) + budget_ms

    workers =
      for _ <- 1..procs do
        Task.async(fn ->
          Enum.reduce_while(1..ops, 0, fn _, done ->
            if System.monotonic_time(:millisecond) < stop_at do
              timed_step(Enum.random(@ops), ctx, names, keeper, limiter)
              {:cont, done + 1}
            else
              {:halt, done}
            end
          end)
        end)
      end

    done = Enum.map(workers, &Task.await(&1, budget_ms + 120_000))
    assert Enum.sum(done) >= procs

    # Settle: the server is up, stopped, the EPMD gone.
    assert DistCase.eventually(fn -> Process.whereis(Dala.Dist.Server) end)
    assert Dist.stop() == :ok
    assert DistCase.assert_truthful() == :idle
    Agent.stop(limiter)
    os_pid = Agent.get(keeper, & &1)
    Agent.stop(keeper)
    Net.stop_epmd(os_pid)
    assert {:error, _} = Epmd.names(port: ctx.epmd_port, timeout: 200)

    # A module loaded on first use during the run (which ones depends on the VM: qemu's arm64
    # run loads others than the host's) brings its own atoms: they are not a leak.
    new_modules = fn ->
      MapSet.difference(MapSet.new(:code.all_loaded(), &elem(&1, 0)), loaded)
    end

    assert DistCase.eventually(
             fn -> leak_free?(baseline, counts(), module_atoms(new_modules.())) end,
             5_000
           ),
           "leak: before #{inspect(baseline)}, after #{inspect(counts())} (modules loaded since: #{inspect(new_modules.())})"

    # No epmd of this VM's port is left behind (the Android flow never starts one).
    refute epmd_os_process?(ctx.epmd_port)
  end

  defp counts do
    %{
      processes: length(Process.list()),
      ports: length(Port.list()),
      fds: Net.open_fd_count(),
      atoms: :erlang.system_info(:atom_count)
    }
  end

  # A few processes/ports of slack for logger and kernel housekeeping; a leak would be one or
  # more per operation (hundreds here).
  defp leak_free?(before, now, module_atoms) do
    now.processes <= before.processes + 5 and now.ports <= before.ports + 2 and
      now.fds <= before.fds + 2 and now.atoms - before.atoms < 20 + module_atoms
  end

  # At most the atoms a module's code can hold: its name, its functions and its literals.
  defp module_atoms(modules) do
    Enum.sum(
      for m <- modules do
        with path when is_list(path) <- :code.which(m),
             {:ok, {_, [atoms: atoms]}} <- :beam_lib.chunks(path, [:atoms]) do
          length(atoms)
        else
          _ -> 0
        end
      end
    )
  end

  # Read from /proc, not with `ps`: an external command would inherit the sanitized run's
  # LD_PRELOAD.
  defp epmd_os_process?(port) do
    Path.wildcard("/proc/[0-9]*/cmdline")
    |> Enum.any?(fn path ->
      case File.read(path) do
        {:ok, cmdline} ->
          args = String.split(cmdline, <<0>>, trim: true)

          match?([_ | _], args) and Path.basename(hd(args)) == "epmd" and
            Enum.chunk_every(args, 2, 1) |> Enum.member?(["-port", Integer.to_string(port)])

        {:error, _} ->
          false
      end
    end)
  end
end
