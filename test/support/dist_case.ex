defmodule Dala.Test.DistCase do
  @moduledoc """
  Shared setup of the suites that start distribution inside this test VM (lifecycle, faults).

  `context/2` stops any earlier attempt, checks that this VM's EPMD port is private (never
  4369), sets a fresh random secret in `secret_var`, and restores the environment when the test
  ends. `laptop_epmd/0` starts a real epmd on a free port for one test.
  """
  import ExUnit.Callbacks, only: [on_exit: 1]
  import ExUnit.Assertions, only: [refute: 1]

  alias Dala.Test.Net

  @doc """
  The test context: `:epmd_port` (this VM's, as OTP's erl_epmd uses it; nothing listens there
  between tests), `:cookie` (derived for `app`), `:node` and `:name` (`<prefix><n>@127.0.0.1`
  and its name part) and a free `:dist_port`.
  """
  def context(secret_var, app, prefix) do
    Dala.Dist.stop()
    epmd_port = Dala.Dist.Epmd.port()
    refute epmd_port == 4369
    System.put_env(secret_var, Base.encode64(:rand.bytes(24)))

    on_exit(fn ->
      Dala.Dist.stop()
      Enum.each([secret_var, "DALA_NODE_SUFFIX", "DALA_RELEASE"], &System.delete_env/1)
    end)

    name = "#{prefix}#{System.unique_integer([:positive])}"

    %{
      epmd_port: epmd_port,
      cookie: Dala.Dist.cookie_from_env(secret_var, app),
      node: :"#{name}@127.0.0.1",
      name: name,
      dist_port: Net.free_port()
    }
  end

  @doc """
  The processes doing the lifecycle server's slow work right now (an attempt or a stop): the
  processes linked to `Dala.Dist.Server` other than its supervisor. `[]` when none.
  """
  def work_processes do
    with server when is_pid(server) <- Process.whereis(Dala.Dist.Server),
         {:links, links} <- Process.info(server, :links) do
      supervisor = Process.whereis(Dala.Supervisor)
      Enum.filter(links, &(is_pid(&1) and &1 != supervisor))
    else
      _ -> []
    end
  end

  @doc """
  Waits until `fun` returns a truthy value (checked every 5 ms) and returns it, or `nil` after
  `ms` milliseconds: a wait on state, never a fixed sleep.
  """
  def eventually(fun, ms \\ 5_000) do
    deadline = System.monotonic_time(:millisecond) + ms
    eventually_loop(fun, deadline)
  end

  defp eventually_loop(fun, deadline) do
    cond do
      result = fun.() -> result
      System.monotonic_time(:millisecond) > deadline -> nil
      true -> eventually_again(fun, deadline)
    end
  end

  defp eventually_again(fun, deadline) do
    Process.sleep(5)
    eventually_loop(fun, deadline)
  end

  @doc """
  Asserts that `Dala.Dist.status/0` tells the truth about `Node.alive?/0` (checked only when
  `Node.alive?/0` did not change while the status was read; a start or a stop in progress may
  be either way).
  """
  def assert_truthful do
    before = Node.alive?()
    status = Dala.Dist.status()
    alive = Node.alive?()

    if before == alive do
      case status do
        {:started, node} ->
          ExUnit.Assertions.assert(
            alive and node == node(),
            "status #{inspect(status)} but not alive"
          )

        {:waiting, _} ->
          :ok

        :stopping ->
          :ok

        other ->
          refute(alive)
          other
      end
    end

    status
  end

  @doc "A real epmd on a free port (the laptop's), ended by PID when the test ends: `{port, os_pid}`."
  def laptop_epmd do
    port = Net.free_port()
    pid = Net.start_epmd(port)
    on_exit(fn -> Net.stop_epmd(pid) end)
    {port, pid}
  end
end
