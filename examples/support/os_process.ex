defmodule DalaDemo.OsProcess do
  @moduledoc """
  OS processes the demo starts, each through a Port so that its OS PID is known, and each ended
  by that PID.

  A reaper (a small `sh` in its own session) is the safety net: every PID is registered with it,
  and when its stdin closes, because the demo's VM ended in any way, even `kill -9` or Ctrl-C,
  it ends whatever is still registered. A PID is unregistered once the demo has ended it itself.
  """

  # Lines "+PID" register, "-PID" unregister; EOF on stdin ends what is still registered.
  # INT is ignored so that a Ctrl-C on the terminal leaves the cleanup to the reaper.
  @reaper ~S"""
  trap '' INT
  pids=" "
  while IFS= read -r line; do
    case "$line" in
      +*) pids="$pids${line#+} " ;;
      -*) pids=$(printf '%s' "$pids" | sed "s/ ${line#-} / /") ;;
    esac
  done
  for pid in $pids; do kill "$pid" 2>/dev/null; done
  """

  defstruct [:name, :port, :os_pid]

  @doc "Starts the reaper; call once, before `start/4`."
  def start_reaper do
    port = Port.open({:spawn_executable, find!("sh")}, [:binary, args: ["-c", @reaper]])
    :persistent_term.put({__MODULE__, :reaper}, port)
    :ok
  end

  @doc "Closes the reaper's stdin: it ends whatever is still registered, then exits."
  def stop_reaper do
    port = :persistent_term.get({__MODULE__, :reaper})
    if Port.info(port), do: Port.close(port)
    :ok
  end

  @doc """
  Starts `exe` with `args`; its stdout and stderr arrive as `{port, {:data, {:eol, line}}}`
  messages in the calling process, its end as `{port, {:exit_status, status}}`.

  `env` is a list of `{name, value}` strings; a `nil` value removes the variable.
  """
  def start(name, exe, args, env \\ []) do
    env = for {k, v} <- env, do: {String.to_charlist(k), v && String.to_charlist(v)}

    env =
      Enum.map(env, fn
        {k, nil} -> {k, false}
        kv -> kv
      end)

    port =
      Port.open({:spawn_executable, find!(exe)}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        {:line, 8192},
        args: args,
        env: env
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    reaper("+#{os_pid}")
    %__MODULE__{name: name, port: port, os_pid: os_pid}
  end

  @doc "True while the OS process with this PID exists (`kill -0`)."
  def alive?(os_pid) do
    {_, status} = System.cmd("kill", ["-0", to_string(os_pid)], stderr_to_stdout: true)
    status == 0
  end

  @doc """
  Ends the process by its PID: SIGTERM, then SIGKILL after `grace` ms. Returns its exit status,
  or `:already_exited` when it had ended by itself.
  """
  def stop(%__MODULE__{port: port, os_pid: os_pid}, grace \\ 3_000) do
    result =
      receive do
        {^port, {:exit_status, status}} -> {:already_exited, status}
      after
        0 ->
          signal(os_pid, "TERM")

          receive do
            {^port, {:exit_status, status}} -> status
          after
            grace ->
              signal(os_pid, "KILL")

              receive do
                {^port, {:exit_status, status}} -> status
              after
                grace -> :unknown
              end
          end
      end

    # Still registered when it could not be ended here: the reaper tries again at exit.
    if result != :unknown, do: reaper("-#{os_pid}")
    result
  end

  defp signal(os_pid, sig),
    do: System.cmd("kill", ["-#{sig}", to_string(os_pid)], stderr_to_stdout: true)

  defp reaper(line) do
    case :persistent_term.get({__MODULE__, :reaper}, nil) do
      nil -> :ok
      port -> Port.command(port, line <> "\n")
    end
  end

  defp find!(exe), do: System.find_executable(exe) || raise("#{exe} not found in PATH")
end
