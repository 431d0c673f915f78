defmodule Dala.LifecycleTest do
  # Starts and stops distribution in this VM, whose EPMD port is private (see test_helper.exs).
  use ExUnit.Case, async: false
  @moduletag :vm_dist

  import Bitwise
  import ExUnit.CaptureLog
  alias Dala.Dist
  alias Dala.Test.{DistCase, Net, Peer}

  @secret_var "DALA_LIFECYCLE_TEST_SECRET"

  setup do
    DistCase.context(@secret_var, "lifecycle_app", "phone")
  end

  defp start_real_epmd, do: elem(DistCase.laptop_epmd(), 0)

  defp laptop_erpc(phone, epmd_port, app \\ "lifecycle_app"),
    do: Peer.laptop_erpc(phone, epmd_port, @secret_var, app)

  describe "Android flow" do
    test "honours the delay, waits for EPMD, starts when a tunnel to a real epmd appears, and a laptop attaches",
         ctx do
      laptop_epmd = start_real_epmd()

      start_android(ctx, delay: 300, dist_port: ctx.dist_port)

      assert Dist.status() == {:waiting, :delay}
      # Past the delay, with nothing on the phone's EPMD port: waiting for EPMD, not started.
      assert DistCase.eventually(fn -> Dist.status() == {:waiting, :epmd} end, 5_000)
      refute Node.alive?()

      # `adb reverse` comes up: the phone's EPMD port now reaches the laptop's epmd.
      tunnel = Net.forwarder(ctx.epmd_port, laptop_epmd)
      assert {:ok, node} = Dist.await(5_000)
      assert node == ctx.node
      assert Dist.status() == {:started, ctx.node}
      assert Node.alive?() and node() == ctx.node

      # The dist port is pinned and listens on loopback 127.0.0.1 only.
      assert {:ok, s} = :gen_tcp.connect({127, 0, 0, 1}, ctx.dist_port, [], 1_000)
      :gen_tcp.close(s)
      assert {:error, :econnrefused} = :gen_tcp.connect({127, 0, 0, 2}, ctx.dist_port, [], 1_000)

      # The laptop (a separate OS process using the laptop's epmd) attaches with the same cookie.
      assert laptop_erpc(ctx.node, laptop_epmd) =~ "erpc:'#{ctx.node}'"
      # A laptop with another app's cookie cannot.
      refute laptop_erpc(ctx.node, laptop_epmd, "other_app") =~ "erpc:'#{ctx.node}'"

      :ok = Dist.stop()
      refute Node.alive?()
      assert Dist.status() == :idle
      # The laptop's epmd, reached through the tunnel, is never ended by the phone.
      assert {:ok, _} = Dala.Dist.Epmd.names(port: laptop_epmd)
      Net.stop_listener(tunnel)
    end

    test "a dead tunnel is not EPMD: no EPMD in time gives {:skipped, :no_epmd} at the deadline",
         ctx do
      tunnel = Net.dead_tunnel(ctx.epmd_port)

      start_android(ctx, delay: 0, epmd_timeout: 400, dist_port: ctx.dist_port)

      t0 = System.monotonic_time(:millisecond)
      assert Dist.await(5_000) == {:error, :no_epmd}
      assert System.monotonic_time(:millisecond) - t0 >= 350
      assert Dist.status() == {:skipped, :no_epmd}
      refute Node.alive?()
      Net.stop_listener(tunnel)
    end

    test "a device suffix from DALA_NODE_SUFFIX gives the node its own name", ctx do
      laptop_epmd = start_real_epmd()
      tunnel = Net.forwarder(ctx.epmd_port, laptop_epmd)
      System.put_env("DALA_NODE_SUFFIX", "emulator-5554")

      start_android(ctx, delay: 0, dist_port: ctx.dist_port)

      [name, host] = ctx.node |> Atom.to_string() |> String.split("@")
      expected = :"#{name}_emulator-5554@#{host}"
      assert Dist.await(5_000) == {:ok, expected}
      assert node() == expected
      Dist.stop()
      Net.stop_listener(tunnel)
    end

    test "a name already registered with EPMD fails with {:name_in_use, node} before starting",
         ctx do
      laptop_epmd = start_real_epmd()
      tunnel = Net.forwarder(ctx.epmd_port, laptop_epmd)
      other = Peer.start(ctx.node, laptop_epmd)
      on_exit(fn -> Peer.stop(other) end)

      start_android(ctx, delay: 0, dist_port: ctx.dist_port)

      assert Dist.await(5_000) == {:error, {:name_in_use, ctx.node}}
      assert Dist.status() == {:failed, {:name_in_use, ctx.node}}
      refute Node.alive?()
      Net.stop_listener(tunnel)
    end

    test "a dist port already bound fails with {:port_in_use, port}", ctx do
      laptop_epmd = start_real_epmd()
      tunnel = Net.forwarder(ctx.epmd_port, laptop_epmd)
      {:ok, busy} = :gen_tcp.listen(ctx.dist_port, ip: {127, 0, 0, 1})

      log =
        capture_log(fn ->
          start_android(ctx, delay: 0, dist_port: ctx.dist_port)

          assert Dist.await(5_000) == {:error, {:port_in_use, ctx.dist_port}}
        end)

      # The failure's log line names the node it was for.
      assert log =~ "distribution as #{ctx.node} failed: {:port_in_use, #{ctx.dist_port}}"
      refute Node.alive?()
      :gen_tcp.close(busy)
      Net.stop_listener(tunnel)
    end
  end

  @tag :tmp_dir
  test "Android flow on a launcher that leaves HOME unset still starts (OTP's cookie file needs a home)",
       ctx do
    laptop_epmd = start_real_epmd()

    eval = """
    {ok, _} = application:ensure_all_started(dala),
    C = 'Elixir.Dala.Dist':cookie_from_env(<<"#{@secret_var}">>, <<"lifecycle_app">>),
    ok = 'Elixir.Dala.Dist':ensure_started([{platform, android}, {node, '#{ctx.node}'},
                                           {cookie, C}, {delay, 0}, {dist_port, #{ctx.dist_port}}]),
    io:format("await=~p home=~ts~n", ['Elixir.Dala.Dist':await(10000), os:getenv("HOME")]),
    halt().
    """

    env = [{"HOME", nil}, {"TMPDIR", ctx.tmp_dir}, {@secret_var, System.fetch_env!(@secret_var)}]
    {out, 0} = Peer.eval(nil, laptop_epmd, eval, env)
    assert out =~ "await={ok,'#{ctx.node}'} home=#{ctx.tmp_dir}"
    assert File.dir?(Path.join([ctx.tmp_dir, ".config", "erlang"]))
  end

  describe "host flow" do
    test "without an EPMD, starts one, and stop/0 ends it", ctx do
      assert {:error, _} = Dala.Dist.Epmd.names(port: ctx.epmd_port, timeout: 200)

      start_host(ctx, dist_port: ctx.dist_port)

      assert Dist.await(10_000) == {:ok, ctx.node}
      assert {:ok, %{names: names}} = Dala.Dist.Epmd.names(port: ctx.epmd_port)

      assert Enum.any?(names, fn {name, port} ->
               ctx.node |> Atom.to_string() =~ name and port == ctx.dist_port
             end)

      :ok = Dist.stop()
      refute Node.alive?()
      assert {:error, _} = Dala.Dist.Epmd.names(port: ctx.epmd_port, timeout: 200)
    end

    test "with a foreign EPMD running, uses it, and stop/0 leaves it running", ctx do
      foreign = Net.start_epmd(ctx.epmd_port)
      on_exit(fn -> Net.stop_epmd(foreign) end)

      start_host(ctx, dist_port: ctx.dist_port)

      assert Dist.await(10_000) == {:ok, ctx.node}
      :ok = Dist.stop()
      refute Node.alive?()
      assert {:ok, %{names: _}} = Dala.Dist.Epmd.names(port: ctx.epmd_port)
    end
  end

  describe "host flow, stop/0 during the EPMD start" do
    test "ends the EPMD whose start it interrupted", ctx do
      on_exit(fn -> Dala.Dist.Epmd.kill(port: ctx.epmd_port, timeout: 500) end)

      start_host(ctx, dist_port: ctx.dist_port)

      # Whenever stop/0 lands (before, during or after the daemon's start), no EPMD is left.
      Process.sleep(:rand.uniform(10))
      :ok = Dist.stop()
      Process.sleep(500)
      assert {:error, _} = Dala.Dist.Epmd.names(port: ctx.epmd_port, timeout: 200)
    end
  end

  test "a status {:started, _} whose :net_kernel was stopped elsewhere does not block a new start",
       ctx do
    foreign = Net.start_epmd(ctx.epmd_port)
    on_exit(fn -> Net.stop_epmd(foreign) end)
    opts = [platform: :host, node: ctx.node, cookie: ctx.cookie, dist_port: ctx.dist_port]

    :ok = Dist.ensure_started(opts)
    assert Dist.await(10_000) == {:ok, ctx.node}
    :ok = :net_kernel.stop()
    refute Node.alive?()

    :ok = Dist.ensure_started(opts)
    assert Dist.await(10_000) == {:ok, ctx.node}
    assert Node.alive?()
  end

  test "await/1 with a huge timeout waits without crashing the lifecycle server", ctx do
    server = Process.whereis(Dala.Dist.Server)

    start_android(ctx, delay: 5_000)

    waiter = Task.async(fn -> Dist.await(1 <<< 50) end)
    Process.sleep(50)
    assert Process.whereis(Dala.Dist.Server) == server
    assert Dist.status() == {:waiting, :delay}
    :ok = Dist.stop()
    assert Task.await(waiter) == {:error, :stopped}
  end

  describe "stop/0" do
    test "during the delay cancels the pending start", ctx do
      start_android(ctx, delay: 5_000)

      assert Dist.status() == {:waiting, :delay}
      assert :ok = Dist.stop()
      assert Dist.status() == :idle
      assert Dist.await(0) == {:error, :idle}
      Process.sleep(100)
      assert Dist.status() == :idle
      assert Dala.Test.DistCase.work_processes() == []
    end

    test "during the EPMD gate wakes the gate within milliseconds", ctx do
      start_android(ctx, delay: 0, epmd_timeout: 60_000)

      wait_for_status({:waiting, :epmd})
      waiter = Task.async(fn -> Dist.await(60_000) end)
      Process.sleep(50)
      {micros, :ok} = :timer.tc(&Dist.stop/0)
      assert Task.await(waiter) == {:error, :stopped}
      assert Dist.status() == :idle
      # Far below the 60 s deadline: the gate was woken, not waited out.
      assert micros < 2_000_000
      assert Dala.Test.DistCase.work_processes() == []
    end

    test "is :ok when nothing runs, and twice in a row" do
      assert Dist.stop() == :ok
      assert Dist.stop() == :ok
      assert Dist.status() == :idle
    end
  end

  test "a second ensure_started/1 while waiting changes nothing and starts nothing twice", ctx do
    start_android(ctx, delay: 5_000)

    :ok =
      Dist.ensure_started(
        platform: :android,
        node: :"other@127.0.0.1",
        cookie: ctx.cookie,
        delay: 0
      )

    assert Dist.status() == {:waiting, :delay}
    assert length(Dala.Test.DistCase.work_processes()) == 1
  end

  test "iOS: nothing starts; without -name the status is {:skipped, :not_distributed}" do
    :ok = Dist.ensure_started(platform: :ios)
    assert Dist.status() == {:skipped, :not_distributed}
    assert Dist.await() == {:error, :not_distributed}
    refute Node.alive?()
  end

  test "release builds: DALA_RELEASE=1 starts nothing", ctx do
    System.put_env("DALA_RELEASE", "1")
    start_android(ctx, delay: 0)
    assert Dist.status() == {:skipped, :release}
    assert Dist.await() == {:error, :release}
    assert Dala.Test.DistCase.work_processes() == []
  end

  test "an already alive node reports {:started, node()}; iOS too", ctx do
    foreign = Net.start_epmd(ctx.epmd_port)
    on_exit(fn -> Net.stop_epmd(foreign) end)
    {:ok, _} = :net_kernel.start(ctx.node, %{name_domain: :longnames})

    :ok = Dist.ensure_started(platform: :android, node: :"x@127.0.0.1", cookie: ctx.cookie)
    assert Dist.status() == {:started, ctx.node}
    Dist.stop()
    refute Node.alive?()
    {:ok, _} = :net_kernel.start(ctx.node, %{name_domain: :longnames})
    :ok = Dist.ensure_started(platform: :ios)
    assert Dist.status() == {:started, ctx.node}
  end

  test "100 start/stop cycles leave open fds, process and atom counts where they were", ctx do
    foreign = Net.start_epmd(ctx.epmd_port)
    on_exit(fn -> Net.stop_epmd(foreign) end)

    cycle = fn ->
      start_host(ctx, dist_port: ctx.dist_port)

      {:ok, _} = Dist.await(10_000)
      :ok = Dist.stop()
    end

    # Warm up once (first use loads modules and starts long-lived kernel processes).
    cycle.()
    fds = Net.open_fd_count()
    procs = length(Process.list())
    atoms = :erlang.system_info(:atom_count)
    for _ <- 1..100, do: cycle.()
    assert Net.open_fd_count() <= fds + 2
    assert length(Process.list()) <= procs + 2
    # Same name, same cookie: a cycle makes no atom (a leak would be one or more per cycle).
    assert :erlang.system_info(:atom_count) - atoms < 10
  end

  defp wait_again(wanted, tries) do
    Process.sleep(10)
    wait_for_status(wanted, tries - 1)
  end

  defp wait_for_status(wanted, tries \\ 200) do
    cond do
      Dist.status() == wanted -> :ok
      tries == 0 -> flunk("status never became #{inspect(wanted)}: #{inspect(Dist.status())}")
      true -> wait_again(wanted, tries)
    end
  end

  # ensure_started/1 for this test's node and cookie; returns :ok.
  defp start_android(ctx, opts), do: start(ctx, :android, opts)
  defp start_host(ctx, opts), do: start(ctx, :host, opts)

  defp start(ctx, platform, opts) do
    :ok = Dist.ensure_started([platform: platform, node: ctx.node, cookie: ctx.cookie] ++ opts)
  end
end
