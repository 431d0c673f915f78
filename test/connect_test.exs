defmodule Dala.ConnectTest do
  # The laptop half, against real things: a real laptop EPMD on a private port, two phone BEAMs
  # (OS processes) of one app that start distribution with `dist_port: :auto` through a real
  # loopback tunnel to that EPMD (what `adb reverse` is), and `mix dala.connect` /
  # `mix dala.devices` run as OS processes, exit statuses included. Only `adb` is a stand-in
  # (test/support/fake_adb): it lists the serials below and records reverse/forward requests.
  use ExUnit.Case, async: false

  alias Dala.Test.{Net, Peer}

  # :laptop: these tasks run on the developer's machine, never on a phone (the arm64 run of
  # cross/run.sh leaves them out; its demo step drives them against an arm64 phone instead).
  @moduletag :laptop
  @moduletag timeout: 120_000
  @fake_adb Path.expand("support/fake_adb", __DIR__)
  @secret_var "CONNECT_TEST_SECRET"

  setup_all do
    epmd = Net.free_port()
    Net.start_epmd(epmd)
    # The phones' EPMD port: a live tunnel to the laptop's EPMD, as `adb reverse` makes.
    tunnel = Net.free_port()
    Net.forwarder(tunnel, epmd)

    app = "capp#{System.unique_integer([:positive])}"
    [a, b] = serials = two_serials(app)
    secret = Base.encode64(:rand.bytes(24))

    phones =
      for serial <- serials, into: %{} do
        {serial, start_phone(app, serial, tunnel, secret)}
      end

    # Ended by PID when the module's tests are done (before the test VM halts).
    on_exit(fn -> Enum.each(Map.values(phones), &Net.stop_epmd/1) end)
    names = await_registered(epmd, Enum.map(serials, &Dala.Laptop.device_name(app, &1)))

    adb_dir =
      Path.join(System.tmp_dir!(), "dala-connect-test-#{System.unique_integer([:positive])}")

    File.mkdir_p!(adb_dir)
    on_exit(fn -> File.rm_rf(adb_dir) end)

    %{
      epmd: epmd,
      app: app,
      serials: serials,
      a: a,
      b: b,
      secret: secret,
      phones: phones,
      names: names,
      adb_dir: adb_dir
    }
  end

  setup ctx do
    # A fresh request log per test.
    log = Path.join(ctx.adb_dir, "adb-#{System.unique_integer([:positive])}.log")
    %{adb_log: log}
  end

  test "two phones of one app with dist_port: :auto register different derived ports", ctx do
    ports =
      for serial <- ctx.serials do
        name = Dala.Laptop.device_name(ctx.app, serial)
        port = Map.fetch!(ctx.names, name)
        # The port Dala.Dist.Port derives, in its documented range, and something answers on it.
        assert port == Dala.Dist.Port.auto(name)
        assert port in Dala.Dist.Port.range()
        assert Dala.Laptop.probe(port) == :answers
        port
      end

    assert length(Enum.uniq(ports)) == 2
  end

  test "mix dala.connect --eval 'node()' reaches each phone by --node and by --device", ctx do
    for serial <- ctx.serials do
      name = Dala.Laptop.device_name(ctx.app, serial)
      port = ctx.names[name]

      for how <- [["--node", name], ["--device", serial]] do
        log = ctx.adb_log <> "-#{serial}#{hd(how)}"
        {out, err, status} = connect(ctx, how ++ ["--eval", "node()"], log: log)
        assert status == 0, "#{inspect(how)} exited #{status}:\n#{out}\n#{err}"
        assert String.trim(out) == inspect(:"#{name}@127.0.0.1")

        # The tunnels it asked adb for: the laptop's EPMD reversed on the phone's device (or
        # on every device when only the node is named), the node's port forwarded to its own.
        requests = File.read!(log) |> String.split("\n", trim: true)
        assert "#{serial} reverse tcp:#{ctx.epmd} tcp:#{ctx.epmd}" in requests

        assert requests |> Enum.filter(&(&1 =~ " forward ")) == [
                 "#{serial} forward tcp:#{port} tcp:#{port}"
               ]
      end
    end
  end

  test "mix dala.devices lists both phones with their ports, devices and forwards", ctx do
    name_a = Dala.Laptop.device_name(ctx.app, ctx.a)
    port_a = ctx.names[name_a]
    # A forward of phone a's port is in place already; b has none.
    File.write!(ctx.adb_log, "#{ctx.a} forward tcp:#{port_a} tcp:#{port_a}\n")

    {out, err, status} = mix(ctx, ["dala.devices", "--app", ctx.app], log: ctx.adb_log)
    assert status == 0, err
    assert out =~ "EPMD 127.0.0.1:#{ctx.epmd}: 2 nodes of #{ctx.app}"

    assert out =~ "adb: devices #{Enum.join(Enum.sort(ctx.serials), ", ")}" or
             out =~ "adb: devices #{Enum.join(ctx.serials, ", ")}"

    for serial <- ctx.serials do
      name = Dala.Laptop.device_name(ctx.app, serial)
      port = ctx.names[name]
      forward = if serial == ctx.a, do: ctx.a, else: "none"

      assert out =~
               ~r/^#{Regex.escape(name)}\s+port #{port} \(auto\)\s+answers\s+device #{Regex.escape(serial)}\s+forward #{forward}$/m,
             out
    end

    refute out =~ "SHARED PORT"
  end

  test "a wrong secret on the laptop exits 1 naming the secret's variable, never its value",
       ctx do
    wrong = Base.encode64(:rand.bytes(24))

    {out, err, status} =
      connect(ctx, ["--device", ctx.b, "--eval", "node()"], secret: wrong, log: ctx.adb_log)

    assert status == 1
    assert out == ""
    assert err =~ "refused the handshake"
    assert err =~ "the secret in #{@secret_var} on this laptop differs"

    for hidden <- [wrong, ctx.secret] do
      refute err =~ hidden
      cookie = derive(hidden, ctx.app)
      refute err =~ cookie
    end
  end

  test "an app with no phone registered exits 1 and lists what is registered", ctx do
    {out, err, status} =
      mix(
        ctx,
        ["dala.connect", "nophone", "--cookie-env", @secret_var, "--wait", "1"] ++
          ["--eval", "node()"],
        log: ctx.adb_log
      )

    assert status == 1
    assert out == ""
    # It waited, bounded, and said so while it did.
    assert err =~ "\rwaiting for a node of nophone in the laptop's EPMD: 1 s left"
    assert err =~ "no node of nophone is registered in the laptop's EPMD (127.0.0.1:#{ctx.epmd}"

    for {name, port} <- ctx.names, do: assert(err =~ "#{name} (port #{port})")
  end

  test "refuses to forward a node's port that is already forwarded to another device", ctx do
    name_b = Dala.Laptop.device_name(ctx.app, ctx.b)
    port_b = ctx.names[name_b]
    File.write!(ctx.adb_log, "#{ctx.a} forward tcp:#{port_b} tcp:#{port_b}\n")

    {_out, err, status} = connect(ctx, ["--device", ctx.b, "--eval", "node()"], log: ctx.adb_log)

    assert status == 1

    assert err =~
             "port #{port_b} of #{name_b} is already forwarded to device #{ctx.a}, not #{ctx.b}"

    refute File.read!(ctx.adb_log) =~ "#{ctx.b} forward"
  end

  test "without --eval the terminal goes to iex on the phone; the cookie is never on a command line",
       ctx do
    script = System.find_executable("script")
    name = Dala.Laptop.device_name(ctx.app, ctx.a)
    cookie = derive(ctx.secret, ctx.app)
    before = private_dirs()

    # `script` gives the task a terminal (a pty); what is typed is sent once the prompt shows.
    command = "mix dala.connect #{ctx.app} --node #{name} --cookie-env #{@secret_var} --no-adb"

    port =
      Port.open({:spawn_executable, script}, [
        :binary,
        :exit_status,
        args: ["-qec", command, "/dev/null"],
        cd: File.cwd!(),
        env: [
          {~c"MIX_ENV", ~c"test"},
          {~c"ERL_EPMD_PORT", ~c"#{ctx.epmd}"},
          {String.to_charlist(@secret_var), String.to_charlist(ctx.secret)},
          {~c"ERL_FLAGS", false}
        ]
      ])

    # Should the test fail: script ends its child (the task), and the shell ends with the task.
    {:os_pid, script_pid} = Port.info(port, :os_pid)
    on_exit(fn -> Dala.Test.Net.signal_if(script_pid, "TERM", "script") end)

    prompt = "iex(#{name}@127.0.0.1)"
    out = read_until(port, "", &(&1 =~ prompt))

    # While the shell runs: no command line holds the cookie or the secret, and the shell's
    # private HOME (the cookie file) is gone once its node has registered.
    {ps, 0} = System.cmd("ps", ["-eo", "args"])
    refute ps =~ cookie
    refute ps =~ ctx.secret
    assert Dala.Test.DistCase.eventually(fn -> private_dirs() -- before == [] end, 10_000)

    Port.command(port, "System.pid()\r")
    phone_pid = ctx.phones[ctx.a]
    out = read_until(port, out, &(&1 =~ ~s("#{phone_pid}")))
    assert out =~ ~s("#{phone_pid}")
    # Ctrl-G q: the shell ends, and so does the task, with status 0.
    Port.command(port, "\a")
    read_until(port, out, &(&1 =~ "User switch command"))
    Port.command(port, "q\r")
    assert_receive {^port, {:exit_status, 0}}, 20_000
  end

  describe "in this VM" do
    test "EPMD not running on the laptop is one sentence naming the fix" do
      port = Net.free_port()
      assert {:error, sentence} = Dala.Laptop.names(port)

      assert sentence =~
               "EPMD is not running on this laptop (nothing listens on 127.0.0.1:#{port})"

      assert sentence =~ "epmd -daemon -port #{port}"
    end

    test "a forward with nothing behind it is told apart from a listener", ctx do
      dead = Net.free_port()
      Net.dead_tunnel(dead)
      assert Dala.Laptop.probe(dead) == :closed
      assert {:error, sentence} = Dala.Laptop.check_reachable({"x_dead", dead})
      assert sentence =~ "nothing answers on 127.0.0.1:#{dead} (it accepts and closes at once)"
      assert sentence =~ "adb forward tcp:#{dead} tcp:#{dead}"

      [{name, port} | _] = Enum.to_list(ctx.names)
      assert Dala.Laptop.check_reachable({name, port}) == :ok
    end

    test "mix dala.devices' view flags two nodes registered on one port", ctx do
      name_a = Dala.Laptop.device_name(ctx.app, ctx.a)
      port_a = ctx.names[name_a]
      stale = "#{ctx.app}_stale"
      # A second registration of phone a's port (what a stale or misconfigured phone does),
      # made with a real ALIVE2 request; it lasts while this socket is open.
      socket = register(ctx.epmd, stale, port_a)

      assert {:ok, %{rows: rows, epmd_port: epmd}} = Dala.Laptop.devices(ctx.app, ctx.epmd)
      assert epmd == ctx.epmd
      rows = Map.new(rows, &{&1.name, &1})
      assert rows[name_a].shared_with == [stale]
      assert rows[stale].shared_with == [name_a]
      refute rows[stale].auto?
      assert rows[name_a].auto?
      assert rows[Dala.Laptop.device_name(ctx.app, ctx.b)].shared_with == []

      names = Enum.map(rows, fn {name, row} -> {name, row.port} end)
      assert {:error, sentence} = Dala.Laptop.check_shared_port({stale, port_a}, names)
      assert sentence =~ "#{stale} and #{name_a} registered the same dist port #{port_a}"
      :gen_tcp.close(socket)
    end

    test "two nodes on one port are refused, naming both" do
      names = [{"app_a", 9300}, {"app_b", 9300}, {"app_c", 9301}]
      assert {:error, sentence} = Dala.Laptop.check_shared_port({"app_a", 9300}, names)
      assert sentence =~ "app_a and app_b registered the same dist port 9300"
      assert Dala.Laptop.check_shared_port({"app_c", 9301}, names) == :ok
    end
  end

  ## Phones

  # Two serials whose derived ports differ and are free here (the phones share this loopback).
  defp two_serials(app) do
    Stream.iterate(0, &(&1 + 1))
    |> Stream.map(fn i -> ["emulator-#{5554 + 2 * i}", "R58M#{i}ABC"] end)
    |> Enum.find(fn serials ->
      ports = Enum.map(serials, &Dala.Dist.Port.auto(:"#{app}@127.0.0.1", &1))
      length(Enum.uniq(ports)) == 2 and Enum.all?(ports, &port_free?/1)
    end)
  end

  defp port_free?(port) do
    case :gen_tcp.listen(port, ip: {127, 0, 0, 1}, reuseaddr: true) do
      {:ok, socket} -> :gen_tcp.close(socket) == :ok
      {:error, _} -> false
    end
  end

  # What a Dala app does at start on Android, with DALA_NODE_SUFFIX the device serial.
  defp start_phone(app, serial, epmd_port, secret) do
    eval = """
    {ok, _} = application:ensure_all_started(dala),
    C = 'Elixir.Dala.Dist':cookie_from_env(<<"#{@secret_var}">>, <<"#{app}">>),
    ok = 'Elixir.Dala.Dist':ensure_started([{platform, android}, {node, '#{app}@127.0.0.1'},
      {cookie, C}, {delay, 0}, {dist_port, auto}]),
    {ok, _} = 'Elixir.Dala.Dist':await(20000),
    receive after infinity -> ok end.
    """

    env = [
      {~c"ERL_EPMD_PORT", ~c"#{epmd_port}"},
      {~c"DALA_NODE_SUFFIX", String.to_charlist(serial)},
      {String.to_charlist(@secret_var), String.to_charlist(secret)},
      {~c"DALA_DIST_PORT", false},
      {~c"DALA_RELEASE", false},
      {~c"ERL_FLAGS", false}
    ]

    # IEx too, as an app built with Elixir has it: `iex --remsh` starts its shell on the phone.
    iex = :iex |> :code.lib_dir() |> Path.join("ebin")
    args = ["-noshell"] ++ Peer.code_paths() ++ ["-pa", iex, "-eval", eval]
    Net.spawn_os(System.find_executable("erl"), args, env)
  end

  defp await_registered(epmd, names, tries \\ 300) do
    {:ok, %{names: registered}} = Dala.Dist.Epmd.names(port: epmd)
    found = Map.new(registered)

    cond do
      Enum.all?(names, &Map.has_key?(found, &1)) ->
        Map.take(found, names)

      tries == 0 ->
        flunk("the phones did not register #{inspect(names)}; EPMD holds #{inspect(registered)}")

      true ->
        Process.sleep(50)
        await_registered(epmd, names, tries - 1)
    end
  end

  # ALIVE2_REQ (opcode 120) for `name` on `port`; the reply is ALIVE2_RESP (121) or
  # ALIVE2_X_RESP (118) with result 0.
  defp register(epmd, name, port) do
    {:ok, socket} = :gen_tcp.connect({127, 0, 0, 1}, epmd, [:binary, active: false])
    body = <<120, port::16, 77, 0, 6::16, 5::16, byte_size(name)::16, name::binary, 0::16>>
    :ok = :gen_tcp.send(socket, <<byte_size(body)::16, body::binary>>)
    assert {:ok, <<op, 0, _creation::binary>>} = :gen_tcp.recv(socket, 0, 5_000)
    assert op in [118, 121]
    socket
  end

  defp private_dirs, do: Path.wildcard(Path.join(System.tmp_dir!(), "dala-connect-*"))

  defp read_until(port, acc, done?) do
    if done?.(acc) do
      acc
    else
      receive do
        {^port, {:data, data}} -> read_until(port, acc <> data, done?)
        {^port, {:exit_status, status}} -> flunk("the task exited #{status}:\n#{acc}")
      after
        30_000 -> flunk("no prompt within 30 s:\n#{acc}")
      end
    end
  end

  ## The tasks, as OS processes

  defp connect(ctx, args, opts) do
    mix(ctx, ["dala.connect", ctx.app, "--cookie-env", @secret_var | args], opts)
  end

  # `mix TASK ARGS` in this project with the laptop's EPMD port, the fake adb, and the secret
  # (the phones' unless `secret:` says otherwise); returns {stdout, stderr, exit status}.
  defp mix(ctx, args, opts) do
    err = Path.join(ctx.adb_dir, "stderr-#{System.unique_integer([:positive])}")

    env = [
      {"MIX_ENV", "test"},
      {"ERL_EPMD_PORT", "#{ctx.epmd}"},
      {"DALA_ADB", @fake_adb},
      {"FAKE_ADB_SERIALS", Enum.join(ctx.serials, " ")},
      {"FAKE_ADB_LOG", Keyword.fetch!(opts, :log)},
      {@secret_var, Keyword.get(opts, :secret, ctx.secret)},
      {"ERL_FLAGS", nil}
    ]

    # stderr to a file, so that stdout is exactly what the task prints there.
    script = ~s(exec "$0" "$@" 2>"#{err}")

    {out, status} =
      System.cmd("sh", ["-c", script, System.find_executable("mix") | args],
        env: env,
        cd: File.cwd!()
      )

    {out, File.read!(err), status}
  end

  defp derive(secret, app) do
    var = "CONNECT_TEST_DERIVE_#{System.unique_integer([:positive])}"
    System.put_env(var, secret)

    try do
      Atom.to_string(Dala.Dist.cookie_from_env(var, app))
    after
      System.delete_env(var)
    end
  end
end
