defmodule DalaDemo.Failure do
  @moduledoc "A step of the demo did not go as the story says; the message is the verdict."
  defexception [:message]
end

defmodule DalaDemo.Events do
  @moduledoc """
  What the laptop hears while the story plays: the phone's output lines and this VM's
  `{:nodedown, node}` messages. Each becomes a timeline row as it arrives and is kept, so a
  step can wait for an event that has already come (the phone's own lines and the laptop's
  nodedown race each other).

  The phone prints `PHONE <wall clock in µs> <event> <detail>` (see examples/phone_app.exs);
  any other line is shown as the phone's log. If the phone's OS process ends, the step fails.
  """

  alias DalaDemo.{Failure, OsProcess, Timeline}

  @doc "Listens to this phone from now on (its Port must belong to the calling process)."
  def watch(%OsProcess{} = phone), do: Process.put({__MODULE__, :phone}, phone)

  @doc "The phone's last reported `Dala.Dist.status()`, as printed."
  def phone_status, do: Process.get({__MODULE__, :status})

  @doc "The phone BEAM's own OS PID, as it reported it (else the Port's, the same PID here)."
  def phone_os_pid, do: Process.get({__MODULE__, :os_pid}) || phone().os_pid

  @doc """
  Returns the first event, past or coming, for which `match?` is true; fails after `timeout`
  ms. Events: `{:phone, kind, detail, at}`, `{:log, line}`, `{:nodedown, node, at}`.
  """
  def await(what, timeout, match?) do
    deadline = System.monotonic_time(:millisecond) + timeout

    Enum.find(Enum.reverse(Process.get({__MODULE__, :seen}, [])), match?) ||
      Stream.repeatedly(fn -> next(deadline) end)
      |> Enum.find(fn
        :timeout -> raise Failure, "timed out after #{timeout} ms waiting for #{what}"
        event -> match?.(event)
      end)
  end

  @doc "Shows what arrives during the next `ms` milliseconds."
  def pump(ms) do
    deadline = System.monotonic_time(:millisecond) + ms
    Stream.repeatedly(fn -> next(deadline) end) |> Enum.find(&(&1 == :timeout))
    :ok
  end

  defp next(deadline) do
    %OsProcess{port: port} = phone()
    wait = max(deadline - System.monotonic_time(:millisecond), 0)

    event =
      receive do
        {^port, {:data, {:eol, "PHONE " <> line}}} ->
          [at, kind, detail] = String.split(line, " ", parts: 3)
          at = String.to_integer(at)
          if kind == "status", do: Process.put({__MODULE__, :status}, detail)
          if kind == "boot", do: Process.put({__MODULE__, :os_pid}, os_pid_of(detail))
          Timeline.event(:phone, kind, detail, at)
          {:phone, kind, detail, at}

        {^port, {:data, {_eol, line}}} ->
          # A blank line (the end of a multi-line log message) would make an empty row.
          if String.trim(line) != "", do: Timeline.event(:phone, "log", line)
          {:log, line}

        {^port, {:exit_status, status}} ->
          # Put it back for OsProcess.stop/1, which then knows the phone has already ended.
          send(self(), {port, {:exit_status, status}})
          raise Failure, "the phone exited with status #{status}"

        {:nodedown, node} ->
          {:nodedown, node, Timeline.event(:laptop, "nodedown", "#{node}")}
      after
        wait -> :timeout
      end

    if event != :timeout,
      do: Process.put({__MODULE__, :seen}, [event | Process.get({__MODULE__, :seen}, [])])

    event
  end

  defp phone, do: Process.get({__MODULE__, :phone})

  defp os_pid_of(boot_detail) do
    [_, pid] = Regex.run(~r/os_pid=(\d+)/, boot_detail)
    String.to_integer(pid)
  end
end
