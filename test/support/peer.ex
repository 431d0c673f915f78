defmodule Dala.Test.Peer do
  @moduledoc """
  Separate OS-process BEAM nodes for tests: the "laptop" that attaches to a node, or another
  "phone" of the same app. Each runs `erl` with this build's code paths and the EPMD port given,
  and is ended by PID when the test ends.
  """

  @doc "Code paths (`-pa`) that give a peer this build of dala and Elixir."
  def code_paths do
    dala = :code.lib_dir(:dala) |> Path.join("ebin")
    elixir = :code.lib_dir(:elixir) |> Path.join("ebin")
    logger = :code.lib_dir(:logger) |> Path.join("ebin")
    Enum.flat_map([dala, elixir, logger], &["-pa", to_string(&1)])
  end

  @doc """
  Runs `eval` (Erlang expressions, ending with `halt()`) in a new node named `name` whose EPMD
  port is `epmd_port`; returns `{output, exit_status}`. `env` adds environment variables (a
  `nil` value unsets one).
  """
  def eval(name, epmd_port, eval, env \\ [], timeout \\ 30_000) do
    # name nil: the node starts without distribution (it may start it itself, like an app).
    dist =
      if name, do: ["-name", to_string(name), "-setcookie", "dala_test_placeholder"], else: []

    args = ["-noshell" | dist] ++ code_paths() ++ ["-eval", eval]

    env = [{"ERL_EPMD_PORT", Integer.to_string(epmd_port)} | env]
    task = Task.async(fn -> System.cmd(erl(), args, env: env, stderr_to_stdout: true) end)

    case Task.yield(task, timeout) || Task.shutdown(task, :brutal_kill) do
      {:ok, result} -> result
      nil -> {"peer #{name} timed out after #{timeout} ms", :timeout}
    end
  end

  @doc """
  The laptop: a new node that derives the cookie itself from the secret in `secret_var` (passed
  on from this VM's environment) for `app`, attaches to `phone` through the EPMD on `epmd_port`
  and calls `erlang:node()` there. Returns the peer's output, `erpc:'<phone>'` on success.
  """
  def laptop_erpc(phone, epmd_port, secret_var, app) do
    eval = """
    C = 'Elixir.Dala.Dist':cookie_from_env(<<"#{secret_var}">>, <<"#{app}">>),
    erlang:set_cookie(C),
    R = (catch erpc:call('#{phone}', erlang, node, [], 5000)),
    io:format("erpc:~p~n", [R]),
    halt().
    """

    name = :"laptop#{System.unique_integer([:positive])}@127.0.0.1"
    {out, 0} = eval(name, epmd_port, eval, [{secret_var, System.fetch_env!(secret_var)}])
    out
  end

  @doc """
  Starts a node named `name` that registers with the EPMD on `epmd_port` and stays up; returns
  its OS PID. The node prints `ready` once it is registered. `stop/1` ends it.
  """
  def start(name, epmd_port, env \\ []) do
    args =
      ["-noshell", "-name", to_string(name), "-setcookie", "dala_test_other"] ++
        ["-eval", "io:format(\"ready~n\")"]

    env =
      Enum.map([{"ERL_EPMD_PORT", Integer.to_string(epmd_port)} | env], fn {k, v} ->
        {String.to_charlist(k), String.to_charlist(v)}
      end)

    port =
      Port.open({:spawn_executable, erl()}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: args,
        env: env
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)

    receive do
      {^port, {:data, data}} ->
        if data =~ "ready", do: {port, os_pid}, else: raise("peer #{name} failed: #{data}")

      {^port, {:exit_status, status}} ->
        raise "peer #{name} exited with status #{status}"
    after
      15_000 -> raise "peer #{name} did not start"
    end
  end

  @doc """
  Ends a node started with `start/3`, by its OS PID, and returns once the process is gone.

  Works from `on_exit/1` too, where the test process that owns the port is already dead and the
  port's `exit_status` message can never arrive: then the evidence is the PID leaving `/proc`
  (the VM's child reaper collects it), waited for at most 5 s.
  """
  def stop({port, os_pid}) do
    # OS pids wrap around (pid_max is 32768 here): kill only while the pid is still a BEAM.
    Dala.Test.Net.signal_if(os_pid, "KILL", "beam")

    if Port.info(port, :connected) == {:connected, self()} do
      receive do
        {^port, {:exit_status, _}} -> :ok
      after
        5_000 -> :ok
      end
    else
      wait_gone(os_pid, System.monotonic_time(:millisecond) + 5_000)
    end
  end

  defp wait_gone(os_pid, until) do
    if File.exists?("/proc/#{os_pid}") and System.monotonic_time(:millisecond) < until do
      Process.sleep(5)
      wait_gone(os_pid, until)
    else
      :ok
    end
  end

  defp erl, do: System.find_executable("erl")
end
