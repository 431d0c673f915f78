defmodule Dala.DemoTest do
  # Runs examples/android_dev_loop.exs (the README's `make demo`) as its own OS process, with
  # this build's code and a private EPMD port, and checks what it says and what it leaves behind.
  use ExUnit.Case, async: false

  @moduletag timeout: 180_000
  @demo Path.expand("../examples/android_dev_loop.exs", __DIR__)

  test "plays the dev loop: dead tunnel, live tunnel, start, erpc, code push, stop, nodedown" do
    {output, status, _demo_pid} = run_demo(Dala.Test.Net.free_port())
    assert status == 0, "the demo exited with #{status}:\n#{output}"
    assert output =~ ~r/^VERDICT: PASS .+/m

    rows = rows(output)

    # The phases, in the order the story plays them (other rows may come between).
    assert_in_order(rows, output, [
      {"laptop", "laptop-epmd", ~r/^epmd -port \d+ answers/},
      {"laptop", "dead-tunnel", ~r/accepts, then closes/},
      {"phone", "status", ~r/^\{:waiting, :delay\}$/},
      {"phone", "status", ~r/^\{:waiting, :epmd\}$/},
      {"laptop", "dead-tunnel", ~r/^phone still \{:waiting, :epmd\} after [1-9]\d* connections/},
      {"laptop", "live-tunnel", ~r/now forwards to the laptop's EPMD/},
      {"phone", "status", ~r/^\{:started, :"demo_app_emulator-5554@127\.0\.0\.1"\}$/},
      {"laptop", "started", ~r/^the phone started [\d.]+ ms after the live tunnel/},
      # The developer's tasks, as OS processes: the phone listed, reached, and a wrong secret
      # told by its variable's name.
      {"laptop", "dala.devices", ~r/^\| demo_app_emulator-5554\s+port \d+\s+answers$/},
      {"laptop", "dala.devices", ~r/^exit status 0 /},
      {"laptop", "dala.connect", ~r/^\| \{:started, :"demo_app_emulator-5554@127\.0\.0\.1"\}$/},
      {"laptop", "dala.connect", ~r/^exit status 0 /},
      {"laptop", "dala.connect",
       ~r/refused the handshake: the secret in DALA_DEMO_WRONG_SECRET on this laptop differs/},
      {"laptop", "dala.connect", ~r/^exit status 1 /},
      {"laptop", "connect",
       ~r/^laptop@127\.0\.0\.1 connected to demo_app_emulator-5554@127\.0\.0\.1$/},
      {"laptop", "erpc", ~r/^node\(\) = :"demo_app_emulator-5554@127\.0\.0\.1"/},
      {"laptop", "erpc", ~r/^OTP release = "#{System.otp_release()}"/},
      {"laptop", "code-push", ~r/^compiled DalaDemo\.Ota here .* on the phone, called it/},
      {"laptop", "stop", ~r/Dala\.Dist, :stop/}
    ])

    # After the stop, the laptop's nodedown and the phone's own lines race each other; the
    # laptop checks the phone last.
    after_stop =
      Enum.drop_while(rows, fn {_, side, phase, _} -> {side, phase} != {"laptop", "stop"} end)

    for expected <- [
          [{"laptop", "nodedown", ~r/^demo_app_emulator-5554@127\.0\.0\.1$/}],
          [
            {"phone", "status", ~r/^:idle$/},
            {"phone", "alive", ~r/^still running after stop: .*Node\.alive\?\(\) = false$/}
          ]
        ] do
      assert_in_order(
        after_stop,
        output,
        expected ++
          [
            {"laptop", "alive",
             ~r/^phone os pid \d+ still running; laptop EPMD lists \["laptop"\]$/}
          ]
      )
    end

    # The phone never left {:waiting, :epmd} for anything but {:started, _}.
    # (:stopping, when the poll lands while stop/0 works, is on the way to :idle.)
    phone_statuses = for {_, "phone", "status", detail} <- rows, detail != ":stopping", do: detail

    assert [":idle", "{:waiting, :delay}", "{:waiting, :epmd}", "{:started, " <> _, ":idle"] =
             Enum.dedup([":idle" | phone_statuses])

    # Every OS process it started is gone.
    for pid <- started_os_pids(output), do: refute(os_alive?(pid), "os pid #{pid} still runs")
  end

  test "the processes it started end when the demo's VM is killed mid-run" do
    port = Dala.Test.Net.free_port()
    {output, _status, _demo_pid} = run_demo(port, kill_after: "live-tunnel")
    pids = started_os_pids(output)
    assert length(pids) == 2, "expected the epmd's and the phone's PIDs in:\n#{output}"
    # The reaper ends them by PID once the demo's VM is gone; the phone's BEAM takes a moment.
    for pid <- pids,
        do:
          assert(
            Dala.Test.DistCase.eventually(fn -> not os_alive?(pid) end, 10_000),
            "os pid #{pid} still runs"
          )

    assert {:error, _} = :gen_tcp.connect({127, 0, 0, 1}, port, [], 200)
  end

  test "refuses to run without a private EPMD port" do
    {output, status, _} = run_demo(nil)
    assert status == 2
    assert output =~ "needs a private EPMD port for this VM, never the machine's 4369"
    assert output =~ "VERDICT: FAIL no private ERL_EPMD_PORT"
  end

  ## Running the demo

  # `elixir` with this build's ebin on the path (not `mix run`, which would wait on the build
  # lock this `mix test` holds). `kill_after: phase` kills the demo's VM with SIGKILL as soon as
  # it prints a row of that phase.
  defp run_demo(epmd_port, opts \\ []) do
    ebin = Path.join(to_string(:code.lib_dir(:dala)), "ebin")
    env = [{~c"ERL_EPMD_PORT", epmd_port && ~c"#{epmd_port}"}, {~c"ERL_FLAGS", false}]

    env =
      Enum.map(env, fn
        {k, nil} -> {k, false}
        kv -> kv
      end)

    port =
      Port.open({:spawn_executable, System.find_executable("elixir")}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: ["-pa", ebin, @demo],
        env: env
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    collect(port, os_pid, opts[:kill_after], "")
  end

  defp collect(port, os_pid, kill_after, acc) do
    receive do
      {^port, {:data, data}} ->
        acc = acc <> data

        if kill_after && acc =~ ~r/^\s+[\d.]+\s+\w+\s+#{kill_after}\s/m do
          System.cmd("kill", ["-KILL", "#{os_pid}"])
          collect(port, os_pid, nil, acc)
        else
          collect(port, os_pid, kill_after, acc)
        end

      {^port, {:exit_status, status}} ->
        {acc, status, os_pid}
    after
      120_000 ->
        System.cmd("kill", ["-KILL", "#{os_pid}"])
        flunk("the demo did not end within 120 s:\n#{acc}")
    end
  end

  ## Reading its output

  # Timeline rows: "  1234.5  laptop  phase  detail".
  defp rows(output) do
    for [_, ms, side, phase, detail] <-
          Regex.scan(~r/^\s+(\d+\.\d)\s+(laptop|phone)\s+(\S+)\s+(.*)$/m, output),
        do: {String.to_float(ms), side, phase, detail}
  end

  defp assert_in_order(rows, output, expected) do
    Enum.reduce(expected, rows, fn {side, phase, detail}, rest ->
      case Enum.drop_while(rest, fn {_, s, p, d} ->
             not (s == side and p == phase and d =~ detail)
           end) do
        [_found | after_it] ->
          after_it

        [] ->
          flunk("no #{side} #{phase} row matching #{inspect(detail)} in its place:\n#{output}")
      end
    end)
  end

  defp started_os_pids(output) do
    for [_, pid] <- Regex.scan(~r/(?:answers|phone BEAM) \(os pid (\d+)\)/, output), do: pid
  end

  defp os_alive?(pid), do: match?({_, 0}, System.cmd("kill", ["-0", pid], stderr_to_stdout: true))
end
