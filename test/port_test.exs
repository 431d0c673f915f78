defmodule Dala.PortTest do
  # dist_port: :auto and DALA_DIST_PORT=auto: the formula of Dala.Dist.Port, its resolution for
  # ensure_started/1, and a busy derived port failing like a pinned one (in this VM, whose EPMD
  # port is private).
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  alias Dala.Dist
  alias Dala.Dist.{Identity, Options}
  alias Dala.Test.{DistCase, Net}

  doctest Dala.Dist.Port

  @secret_var "DALA_PORT_TEST_SECRET"

  setup do
    on_exit(fn -> Enum.each(["DALA_NODE_SUFFIX", "DALA_DIST_PORT"], &System.delete_env/1) end)
  end

  test "derived ports stay in 9100..9899, are stable, and follow the suffixed name" do
    names = for i <- 1..2_000, do: "app#{rem(i, 7)}_device-#{i}"
    ports = Enum.map(names, &Dist.Port.auto/1)
    assert Enum.all?(ports, &(&1 in Dist.Port.range()))
    assert Dist.Port.range() == 9100..9899
    # Spread over the range: 2000 names hit most of the 800 ports.
    assert ports |> Enum.uniq() |> length() > 600
    assert Enum.map(names, &Dist.Port.auto/1) == ports

    # The host part does not count; the suffix is applied by the phone's own rule first.
    assert Dist.Port.auto(:"my_app_R58M_1@127.0.0.1") == Dist.Port.auto("my_app_R58M_1")
    assert Dist.Port.auto(:"my_app@127.0.0.1", "R58M:1") == Dist.Port.auto("my_app_R58M_1")
    # No suffix: the app's own name; two apps on one phone differ.
    assert Dist.Port.auto(:"my_app@127.0.0.1", nil) == Dist.Port.auto("my_app")
    refute Dist.Port.auto("my_app") == Dist.Port.auto("other_app")
    assert Dist.Port.default() == 9100

    assert_raise ArgumentError, ~r/node must be a node name atom or string/, fn ->
      Dist.Port.auto(42)
    end

    assert_raise ArgumentError, ~r/non-empty name part/, fn -> Dist.Port.auto("@host") end
  end

  test ":auto and DALA_DIST_PORT=auto resolve to the derived port of the suffixed node" do
    System.put_env("DALA_NODE_SUFFIX", "emulator-5556")
    node = :"my_app_emulator-5556@127.0.0.1"
    expected = Dist.Port.auto("my_app_emulator-5556")
    opts = [node: :"my_app@127.0.0.1", cookie: :c, platform: :android]

    # The option is kept as :auto until the node is known, then resolved for the suffixed node.
    assert Options.validate!(opts ++ [dist_port: :auto]).dist_port == :auto

    log =
      capture_log(fn ->
        assert Identity.resolve_dist_port(:auto, node) == expected
      end)

    assert log =~ "dist_port :auto is #{expected} for my_app_emulator-5556@127.0.0.1"
    assert log =~ "pin a port with :dist_port or DALA_DIST_PORT"

    System.put_env("DALA_DIST_PORT", " AUTO ")
    capture_log(fn -> assert Identity.resolve_dist_port(nil, node) == expected end)
    # A pinned port wins over the variable.
    assert Identity.resolve_dist_port(9200, node) == 9200
    System.put_env("DALA_DIST_PORT", "9300")
    assert Identity.resolve_dist_port(nil, node) == 9300
    System.delete_env("DALA_DIST_PORT")
    assert Identity.resolve_dist_port(nil, node) == 9100

    assert_raise ArgumentError, ~r/option :node/, fn ->
      Dist.ensure_started(node: "my_app", cookie: :c, dist_port: :auto, platform: :android)
    end
  end

  @tag :vm_dist
  test "a busy derived port fails with {:port_in_use, port}, and the log says how to pin one" do
    ctx = DistCase.context(@secret_var, "port_app", "portapp")
    {laptop_epmd, _} = DistCase.laptop_epmd()
    tunnel = Net.forwarder(ctx.epmd_port, laptop_epmd)
    port = Dist.Port.auto(ctx.node)

    case :gen_tcp.listen(port, ip: {127, 0, 0, 1}) do
      {:ok, busy} ->
        log =
          capture_log(fn ->
            :ok =
              Dist.ensure_started(
                platform: :android,
                node: ctx.node,
                cookie: ctx.cookie,
                delay: 0,
                dist_port: :auto
              )

            assert Dist.await(5_000) == {:error, {:port_in_use, port}}
          end)

        assert log =~ "dist_port :auto is #{port} for #{ctx.node}"
        assert log =~ "if it is in use, pin a port with :dist_port or DALA_DIST_PORT"
        assert log =~ "failed: {:port_in_use, #{port}}"
        refute Node.alive?()
        :gen_tcp.close(busy)

      {:error, :eaddrinuse} ->
        # Something else holds it already: the same situation, not of this test's making.
        capture_log(fn ->
          Dist.ensure_started(
            platform: :android,
            node: ctx.node,
            cookie: ctx.cookie,
            delay: 0,
            dist_port: :auto
          )

          assert Dist.await(5_000) == {:error, {:port_in_use, port}}
        end)
    end

    Net.stop_listener(tunnel)
  end
end
