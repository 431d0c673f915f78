defmodule DalaDemo.Tunnel do
  @moduledoc """
  What `adb reverse tcp:4369 tcp:4369` puts on the phone's loopback port, in two states:

    * `dead/1` - the laptop's EPMD is down: adb accepts each connection, then closes it.
    * `live/2` - the laptop's EPMD is up: each connection is forwarded to it, byte for byte,
      for as long as both sides keep it open (a node's EPMD registration is one long-lived
      connection).

  A tunnel is one process owning the listening socket (and, through links, every forwarded
  connection); `close/1` ends them all.
  """

  defstruct [:pid, :port, :accepted]

  @listen [:binary, ip: {127, 0, 0, 1}, active: false, reuseaddr: true, backlog: 128]

  @doc "Listens on 127.0.0.1:`port`; accepts and at once closes every connection."
  def dead(port), do: start(port, &:gen_tcp.close/1)

  @doc "Listens on 127.0.0.1:`port`; forwards every connection to 127.0.0.1:`to_port`."
  def live(port, to_port), do: start(port, &forward(&1, to_port))

  @doc "How many connections the tunnel has accepted so far."
  def accepted(%__MODULE__{accepted: counter}), do: :counters.get(counter, 1)

  @doc """
  Closes the listening socket and every connection of the tunnel: `:closed`, or
  `:already_closed`.
  """
  def close(%__MODULE__{pid: pid}) do
    ref = Process.monitor(pid)
    Process.exit(pid, :kill)

    receive do
      {:DOWN, ^ref, :process, ^pid, :noproc} -> :already_closed
      {:DOWN, ^ref, :process, ^pid, _} -> :closed
    end
  end

  # A tunnel closed a moment ago may still hold the port: its sockets close asynchronously,
  # after its process is gone. Try again for up to a second.
  defp start(port, handle, tries_left \\ 50) do
    case listen(port, handle) do
      {:error, :eaddrinuse} when tries_left > 0 ->
        Process.sleep(20)
        start(port, handle, tries_left - 1)

      result ->
        result
    end
  end

  defp listen(port, handle) do
    caller = self()
    ref = make_ref()
    counter = :counters.new(1, [])

    pid =
      spawn(fn ->
        case :gen_tcp.listen(port, @listen) do
          {:ok, listener} ->
            send(caller, {ref, :listening})
            accept_loop(listener, handle, counter)

          {:error, reason} ->
            send(caller, {ref, {:error, reason}})
        end
      end)

    receive do
      {^ref, :listening} -> {:ok, %__MODULE__{pid: pid, port: port, accepted: counter}}
      {^ref, {:error, reason}} -> {:error, reason}
    end
  end

  defp accept_loop(listener, handle, counter) do
    {:ok, socket} = :gen_tcp.accept(listener)
    :counters.add(counter, 1, 1)
    handle.(socket)
    accept_loop(listener, handle, counter)
  end

  # One linked process per connection, so closing the tunnel closes its connections too.
  defp forward(client, to_port) do
    relay = spawn_link(fn -> receive(do: (:owner -> connect_upstream(client, to_port))) end)
    :ok = :gen_tcp.controlling_process(client, relay)
    send(relay, :owner)
  end

  defp connect_upstream(client, to_port) do
    case :gen_tcp.connect({127, 0, 0, 1}, to_port, [:binary, active: true], 1_000) do
      {:ok, upstream} ->
        :ok = :inet.setopts(client, active: true)
        relay(client, upstream)

      {:error, _} ->
        # Like adb when nothing listens on the laptop: the connection just closes.
        :gen_tcp.close(client)
    end
  end

  defp relay(a, b) do
    receive do
      {:tcp, ^a, data} -> pass(:gen_tcp.send(b, data), a, b)
      {:tcp, ^b, data} -> pass(:gen_tcp.send(a, data), a, b)
      {:tcp_closed, _socket} -> close_both(a, b)
      {:tcp_error, _socket, _reason} -> close_both(a, b)
    end
  end

  defp pass(:ok, a, b), do: relay(a, b)
  defp pass({:error, _}, a, b), do: close_both(a, b)

  defp close_both(a, b) do
    :gen_tcp.close(a)
    :gen_tcp.close(b)
  end
end
