# The Android dev loop of a Dala app, end to end, on one machine, with a real EPMD and real nodes.
#
#     make demo
#     # or, after `mix compile`:
#     ERL_EPMD_PORT=<a free port> mix run --no-start examples/android_dev_loop.exs
#
# The "laptop" is this VM with its own EPMD on a free loopback port. The "phone" is a second BEAM
# (an OS process) running examples/phone_app.exs: Dala.Dist.ensure_started(platform: :android)
# with DALA_NODE_SUFFIX=emulator-5554 and a cookie from a fresh random secret. The phone's EPMD
# port is where `adb reverse tcp:4369 tcp:4369` would end; the demo first puts a dead tunnel
# there (adb while the laptop's EPMD is down: accept, then close), then a live one (a forwarder
# to the laptop's EPMD). The laptop then attaches, calls the phone, pushes code to it, and has
# it stop distribution. On the way, the developer's tasks run as a developer runs them:
# `mix dala.devices` and `mix dala.connect --eval` (and once with a wrong secret). Every step is
# a row of the timeline; the last line is the verdict.
for file <- ~w(timeline os_process events cleanup),
    do: Code.require_file("support/#{file}.ex", __DIR__)

# The tunnels and free ports are the test suite's own loopback helpers (one implementation for
# the tests and the demo); EPMD itself is asked through Dala.Dist.Epmd.
unless Code.ensure_loaded?(Dala.Test.Net),
  do: Code.require_file("../test/support/net.ex", __DIR__)

defmodule AndroidDevLoop do
  alias DalaDemo.{Cleanup, Events, Failure, OsProcess, Timeline}
  alias Dala.Dist.Epmd
  alias Dala.Test.Net

  @app "demo_app"
  @suffix "emulator-5554"
  @phone :"demo_app_emulator-5554@127.0.0.1"
  @laptop :"laptop@127.0.0.1"
  @secret_var "DALA_DEMO_SECRET"
  # The app's start delay (3 s by default on Android; short here).
  @delay_ms 300
  # How long the phone sees only the dead tunnel before the live one replaces it.
  @dead_tunnel_ms 1_000
  @deadline_ms 50_000

  def main do
    laptop_epmd = laptop_epmd_port!()
    watchdog()
    OsProcess.start_reaper()

    Timeline.start(
      "dala demo: the Android dev loop on one machine " <>
        "(laptop EPMD 127.0.0.1:#{laptop_epmd}, node #{@phone})"
    )

    result =
      try do
        {:pass, run(laptop_epmd)}
      rescue
        e in Failure -> {:fail, e.message}
        e -> {:fail, "unexpected error: " <> Exception.format(:error, e, __STACKTRACE__)}
      catch
        kind, reason ->
          {:fail, "unexpected #{kind}: " <> Exception.format(kind, reason, __STACKTRACE__)}
      end

    Cleanup.run()
    OsProcess.stop_reaper()

    case result do
      {:pass, summary} ->
        IO.puts(
          "\nVERDICT: PASS #{summary}; #{ms(Timeline.now() - t0())} ms in all, cleanup included"
        )

        System.halt(0)

      {:fail, reason} ->
        IO.puts("\nVERDICT: FAIL " <> reason)
        System.halt(1)
    end
  end

  defp run(laptop_epmd) do
    # 1. The laptop's EPMD, on this VM's private EPMD port.
    if match?({:ok, _}, epmd_names(laptop_epmd, 200)),
      do: fail("an EPMD already answers on port #{laptop_epmd}; choose another ERL_EPMD_PORT")

    epmd =
      OsProcess.start("laptop epmd", "epmd", ["-port", "#{laptop_epmd}", "-address", "127.0.0.1"])

    Cleanup.defer("laptop EPMD", fn ->
      "laptop EPMD (os pid #{epmd.os_pid}) ended by PID, exit status #{inspect(OsProcess.stop(epmd))}"
    end)

    with {:timeout, %{last_error: reason}} <- Epmd.wait(5_000, port: laptop_epmd),
         do: fail("the laptop's EPMD did not answer: #{inspect(reason)}")

    event(:laptop, "laptop-epmd", "epmd -port #{laptop_epmd} answers (os pid #{epmd.os_pid})")

    # 2. The phone's loopback EPMD port, with the dead tunnel on it.
    phone_epmd = Net.free_port()
    dist_port = Net.free_port()
    dead = Net.dead_tunnel(phone_epmd)

    Cleanup.defer("dead tunnel", fn ->
      "dead tunnel: #{Net.stop_listener(dead)}" |> String.replace("_", " ")
    end)

    event(
      :laptop,
      "dead-tunnel",
      "127.0.0.1:#{phone_epmd} accepts, then closes (adb reverse, laptop EPMD down)"
    )

    # 3. The phone: the app starts, distribution waits.
    secret = Base.url_encode64(:crypto.strong_rand_bytes(24))
    System.put_env(@secret_var, secret)

    # DALA_DEMO_PHONE_LAUNCHER: a program that runs the phone's command line (another VM,
    # e.g. cross/arm64_phone.sh for an arm64 BEAM under qemu); it must exec it, keeping the PID.
    {phone_exe, phone_args} =
      case System.get_env("DALA_DEMO_PHONE_LAUNCHER", "") do
        "" -> {"elixir", []}
        launcher -> {launcher, ["elixir"]}
      end

    phone =
      OsProcess.start(
        "phone",
        phone_exe,
        phone_args ++
          [
            "-pa",
            dala_ebin(),
            Path.join(__DIR__, "phone_app.exs"),
            "#{@delay_ms}",
            "#{dist_port}"
          ],
        [
          {"ERL_EPMD_PORT", "#{phone_epmd}"},
          {"DALA_NODE_SUFFIX", @suffix},
          {@secret_var, secret},
          # Nothing of the demo's own VM settings, nor a release switch from the caller's shell.
          {"ERL_FLAGS", nil},
          {"DALA_RELEASE", nil}
        ]
      )

    Events.watch(phone)

    Cleanup.defer("phone", fn ->
      "the phone (os pid #{phone.os_pid}) ended by PID, exit status #{inspect(OsProcess.stop(phone))}"
    end)

    event(
      :laptop,
      "phone-boot",
      "started the phone BEAM (os pid #{phone.os_pid}): ERL_EPMD_PORT=#{phone_epmd} " <>
        "DALA_NODE_SUFFIX=#{@suffix} #{@secret_var}=<random, not shown> delay=#{@delay_ms} ms"
    )

    Events.await(
      "the phone waiting for EPMD",
      20_000,
      &match?({:phone, "status", "{:waiting, :epmd}", _}, &1)
    )

    t_waiting = Timeline.now()
    Events.pump(@dead_tunnel_ms)

    closed = Net.accepted(dead)
    status = Events.phone_status()

    cond do
      status != "{:waiting, :epmd}" ->
        fail("the phone left {:waiting, :epmd} during the dead tunnel: #{status}")

      closed == 0 ->
        fail(
          "the phone never tried its EPMD port while waiting (the dead tunnel accepted nothing)"
        )

      true ->
        event(
          :laptop,
          "dead-tunnel",
          "phone still {:waiting, :epmd} after #{closed} connections " <>
            "accepted and closed in #{ms(Timeline.now() - t_waiting)} ms"
        )
    end

    # 4. The laptop's EPMD comes up behind the tunnel: the phone starts at once.
    Net.stop_listener(dead)
    live = Net.forwarder(phone_epmd, laptop_epmd)

    Cleanup.defer("live tunnel", fn ->
      "live tunnel: #{Net.stop_listener(live)}" |> String.replace("_", " ")
    end)

    t_live =
      event(:laptop, "live-tunnel", "127.0.0.1:#{phone_epmd} now forwards to the laptop's EPMD")

    {:phone, _, _, t_started} =
      Events.await(
        "the phone starting distribution",
        10_000,
        &match?({:phone, "status", "{:started, " <> _, _}, &1)
      )

    {:ok, names} = epmd_names(laptop_epmd)

    unless "#{@app}_#{@suffix}" in names,
      do: fail("the laptop's EPMD does not list the phone: #{inspect(names)}")

    event(
      :laptop,
      "started",
      "the phone started #{ms(t_started - t_live)} ms after the live tunnel; " <>
        "laptop EPMD lists #{inspect(names)}"
    )

    # 5. The developer's tasks: what the laptop's EPMD holds, then `mix dala.connect` runs an
    #    expression on the phone; with a wrong secret it exits 1 and names the variable. The
    #    demo itself plays adb (the tunnels above), hence --no-adb.
    laptop_tasks(secret)

    # 6. The laptop attaches with the cookie it derives from the same secret.
    cookie = Dala.Dist.cookie_from_env(@secret_var, @app)

    event(
      :laptop,
      "cookie",
      "Dala.Dist.cookie_from_env(#{inspect(@secret_var)}, #{inspect(@app)}) (not shown)"
    )

    start_laptop_node(cookie)
    :ok = :net_kernel.monitor_nodes(true)
    unless Node.connect(@phone), do: fail("the laptop could not connect to #{@phone}")
    event(:laptop, "connect", "#{@laptop} connected to #{@phone}")

    # 7. Remote calls.
    phone_node = erpc("node()", :erlang, :node, [])
    unless phone_node == @phone, do: fail("the phone says it is #{phone_node}")
    erpc("OTP release", :erlang, :system_info, [:otp_release], &to_string/1)
    {uptime, _} = erpc("uptime (ms)", :erlang, :statistics, [:wall_clock], fn {ms, _} -> ms end)
    erpc("Dala.Dist.status()", Dala.Dist, :status, [])

    # 8. Over the air: compile a module here, load it on the phone, call it there.
    {pushed_to, push_ms} = push_code(phone)

    # 9. The phone stops distribution; the laptop sees it go; the app runs on.
    # A cast: the call ends the connection it would otherwise wait on for a reply.
    :erpc.cast(@phone, Dala.Dist, :stop, [])
    t_stop = event(:laptop, "stop", ":erpc.cast(phone, Dala.Dist, :stop, [])")

    {:nodedown, _, t_down} = Events.await("nodedown", 10_000, &match?({:nodedown, @phone, _}, &1))
    Events.await("the phone's status :idle", 10_000, &match?({:phone, "status", ":idle", _}, &1))
    Events.await("the phone's line after stop", 10_000, &match?({:phone, "alive", _, _}, &1))

    unless OsProcess.alive?(Events.phone_os_pid()),
      do: fail("the phone's OS process #{Events.phone_os_pid()} is gone after stop")

    names = await_unregistered(laptop_epmd, 2_000)

    event(
      :laptop,
      "alive",
      "phone os pid #{Events.phone_os_pid()} still running; laptop EPMD lists #{inspect(names)}"
    )

    "the phone waited through the dead tunnel (#{closed} connections closed), started " <>
      "#{ms(t_started - t_live)} ms after the live tunnel, was listed by mix dala.devices and " <>
      "reached by mix dala.connect --eval (a wrong secret: exit 1 naming its variable), " <>
      "answered :erpc (uptime #{uptime} ms), " <>
      "ran code pushed to #{pushed_to} in #{push_ms} ms, and stopped (nodedown after " <>
      "#{ms(t_down - t_stop)} ms) while its app kept running"
  end

  ## Steps

  defp laptop_epmd_port! do
    port =
      case :init.get_argument(:epmd_port) do
        {:ok, [[port | _] | _]} -> List.to_integer(port)
        _ -> nil
      end

    cond do
      port in [nil, 4369] ->
        IO.puts(:stderr, """
        The demo needs a private EPMD port for this VM, never the machine's 4369. Run:
            make demo
        or  ERL_EPMD_PORT=<a free port> mix run --no-start examples/android_dev_loop.exs
        VERDICT: FAIL no private ERL_EPMD_PORT\
        """)

        System.halt(2)

      Node.alive?() ->
        IO.puts(:stderr, "VERDICT: FAIL run the demo in a VM without --name/--sname")
        System.halt(2)

      true ->
        port
    end
  end

  # `mix dala.devices` and `mix dala.connect`, as OS processes in this project with the laptop's
  # EPMD port, each output line a row. The wrong secret is another random one; neither is shown.
  defp laptop_tasks(secret) do
    devices = mix_task(["dala.devices", "--app", @app], [])

    unless devices.status == 0 and devices.out =~ ~r/^#{@app}_#{@suffix}\s+port \d+\s+answers/m,
      do: fail("mix dala.devices did not list the phone as answering:\n#{devices.out}")

    eval = "Dala.Dist.status()"

    connect =
      mix_task(
        ["dala.connect", @app, "--no-adb", "--cookie-env", @secret_var, "--eval", eval],
        [{@secret_var, secret}]
      )

    unless connect.status == 0 and connect.out =~ "{:started, #{inspect(@phone)}}",
      do: fail("mix dala.connect --eval did not reach the phone:\n#{connect.out}")

    wrong_var = "DALA_DEMO_WRONG_SECRET"
    wrong_secret = Base.url_encode64(:crypto.strong_rand_bytes(24))

    wrong =
      mix_task(
        ["dala.connect", @app, "--no-adb", "--cookie-env", wrong_var, "--eval", "node()"],
        [{wrong_var, wrong_secret}]
      )

    unless wrong.status == 1 and wrong.out =~ "the secret in #{wrong_var} on this laptop differs" and
             not String.contains?(wrong.out, [wrong_secret, secret]),
           do: fail("mix dala.connect with a wrong secret did not say so:\n#{wrong.out}")
  end

  defp mix_task(args, env) do
    [task | _] = args
    event(:laptop, task, "$ mix #{Enum.map_join(args, " ", &shell_word/1)}")
    t = Timeline.now()

    {out, status} =
      System.cmd(
        System.find_executable("mix") || fail("mix is not on PATH"),
        args,
        cd: Path.expand("..", __DIR__),
        stderr_to_stdout: true,
        env:
          [{"MIX_ENV", mix_env()}, {"ERL_FLAGS", nil}, {"DALA_ADB", nil}] ++
            [{"ERL_EPMD_PORT", Integer.to_string(Dala.Dist.Epmd.port())} | env]
      )

    for line <- String.split(out, "\n", trim: true), do: event(:laptop, task, "| " <> line)
    event(:laptop, task, "exit status #{status} (#{ms(Timeline.now() - t)} ms)")
    %{out: out, status: status}
  end

  defp shell_word(word),
    do: if(word =~ ~r/^[\w.:@-]+$/, do: word, else: "'" <> word <> "'")

  # The Mix environment this build of dala was compiled in (`_build/<env>/lib/dala/ebin`).
  defp mix_env do
    case dala_ebin() |> Path.split() |> Enum.drop_while(&(&1 != "_build")) do
      ["_build", env | _] -> env
      _ -> "dev"
    end
  end

  defp dala_ebin do
    case :code.lib_dir(:dala) do
      {:error, _} -> fail("the dala application is not in the code path; run `mix compile` first")
      dir -> Path.join(to_string(dir), "ebin")
    end
  end

  defp start_laptop_node(cookie) do
    # The laptop's dist port listens on loopback only, like everything in this demo.
    Application.put_env(:kernel, :inet_dist_use_interface, {127, 0, 0, 1})

    case :net_kernel.start(@laptop, %{name_domain: :longnames}) do
      {:ok, _} -> :ok
      {:error, reason} -> fail("the laptop's node did not start: #{inspect(reason)}")
    end

    Cleanup.defer("laptop node", fn ->
      "laptop node: :net_kernel.stop() = #{inspect(:net_kernel.stop())}"
    end)

    Node.set_cookie(cookie)
  end

  defp erpc(label, m, f, a, show \\ & &1) do
    {us, result} = :timer.tc(fn -> :erpc.call(@phone, m, f, a, 5_000) end)
    event(:laptop, "erpc", "#{label} = #{inspect(show.(result))} (#{ms(us)} ms)")
    result
  end

  # The module exists only as a binary here; the phone is the only node that has it loaded.
  defp push_code(phone) do
    source = ~S"""
    defmodule DalaDemo.Ota do
      def hello(from), do: {node(), System.pid(), "hello #{from}, from code pushed over the air"}
    end
    """

    t = Timeline.now()
    [{module, binary}] = Code.compile_string(source, "dala_demo_ota.ex")
    :code.purge(module)
    :code.delete(module)

    if :erpc.call(@phone, :code, :is_loaded, [module]) != false,
      do: fail("#{inspect(module)} was on the phone before the push")

    {:module, ^module} =
      :erpc.call(@phone, :code, :load_binary, [module, ~c"dala_demo_ota.ex", binary])

    {on_node, on_pid, greeting} = :erpc.call(@phone, module, :hello, [node()])
    push_ms = ms(Timeline.now() - t)

    unless on_node == @phone and on_pid == to_string(Events.phone_os_pid()),
      do:
        fail(
          "the pushed code ran on #{on_node} (os pid #{on_pid}), not on the phone (#{phone.os_pid})"
        )

    event(
      :laptop,
      "code-push",
      "compiled #{inspect(module)} here (#{byte_size(binary)} bytes), " <>
        ":code.load_binary/3 on the phone, called it: #{inspect(greeting)} from os pid #{on_pid} (#{push_ms} ms)"
    )

    {on_node, push_ms}
  end

  # EPMD forgets a node when its registration connection closes, a moment after nodedown.
  defp await_unregistered(epmd_port, timeout) do
    {:ok, names} = epmd_names(epmd_port)

    cond do
      "#{@app}_#{@suffix}" not in names ->
        names

      timeout <= 0 ->
        fail("the laptop's EPMD still lists the phone after stop: #{inspect(names)}")

      true ->
        Process.sleep(20)
        await_unregistered(epmd_port, timeout - 20)
    end
  end

  # A last resort if a step hangs: the reaper ends the OS processes when this VM halts.
  defp watchdog do
    spawn(fn ->
      Process.sleep(@deadline_ms)
      IO.puts("\nVERDICT: FAIL the demo did not finish within #{@deadline_ms} ms")
      System.halt(1)
    end)
  end

  ## Helpers

  defp event(side, phase, detail, at \\ nil),
    do: Timeline.event(side, phase, detail, at || Timeline.now())

  defp ms(us), do: :erlang.float_to_binary(us / 1000, decimals: 1)
  defp t0, do: :persistent_term.get({Timeline, :t0})
  defp fail(message), do: raise(Failure, message)

  # The names EPMD on `port` holds (NAMES), or `{:error, reason}` (a dead tunnel: `:closed`).
  defp epmd_names(port, timeout \\ 1_000) do
    with {:ok, %{names: names}} <- Epmd.names(port: port, timeout: timeout),
         do: {:ok, Enum.map(names, &elem(&1, 0))}
  end
end

AndroidDevLoop.main()
