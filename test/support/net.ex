defmodule Dala.Test.Net do
  @moduledoc """
  Real network things for tests, on loopback only: free ports, a real `epmd` in the foreground,
  and misbehaving TCP listeners (a dead adb tunnel, a silent peer, garbage, a half reply) plus a
  forwarder that behaves like a live `adb reverse` tunnel.

  Every listener is a process linked to the caller that owns its listen socket and every socket
  it accepted, so all of them close when it stops or when the test process exits. `start_epmd/2`
  kills its epmd when the test process exits, too. Nothing here ever touches port 4369.

  The demo (`examples/android_dev_loop.exs`) loads this file too: its dead and live tunnels are
  `dead_tunnel/1` and `forwarder/2`.
  """

  @loopback {127, 0, 0, 1}

  @doc "A TCP port that is free on 127.0.0.1 right now (bound to port 0, read, closed)."
  @spec free_port() :: :inet.port_number()
  def free_port do
    {:ok, socket} = :gen_tcp.listen(0, ip: @loopback, reuseaddr: true)
    {:ok, port} = :inet.port(socket)
    :ok = :gen_tcp.close(socket)
    port
  end

  @doc """
  Starts the real `epmd -port port` in the foreground and waits until it answers NAMES.

  Returns its OS pid. The epmd binds loopback only, runs with a clean EPMD environment
  (`ERL_EPMD_*` unset) and is killed when the calling process exits; `stop_epmd/1` stops it
  earlier. Option `relaxed: true` adds `-relaxed_command_check`.
  """
  @spec start_epmd(:inet.port_number(), keyword()) :: non_neg_integer()
  def start_epmd(port, opts \\ []) do
    refute_4369!(port)
    {:ok, exe} = Dala.Dist.Epmd.epmd_executable()
    relaxed = if Keyword.get(opts, :relaxed, false), do: ["-relaxed_command_check"], else: []
    args = ["-port", Integer.to_string(port), "-address", "127.0.0.1"] ++ relaxed

    env = [
      {~c"ERL_EPMD_PORT", false},
      {~c"ERL_EPMD_ADDRESS", false},
      {~c"ERL_EPMD_RELAXED_COMMAND_CHECK", false}
    ]

    os_pid = spawn_os(exe, args, env)

    case Dala.Dist.Epmd.wait(5_000, port: port) do
      {:ready, _} ->
        os_pid

      other ->
        stop_epmd(os_pid)
        raise "epmd on port #{port} did not answer: #{inspect(other)}"
    end
  end

  @doc """
  Starts an OS process (absolute path `exe`) whose lifetime is tied to the calling process:
  returns its OS pid; it is killed when the caller exits. `env` entries are
  `{charlist, charlist | false}` (`false` unsets).
  """
  @spec spawn_os(Path.t(), [String.t()], list()) :: non_neg_integer()
  def spawn_os(exe, args, env \\ []) do
    parent = self()
    ref = make_ref()

    guardian =
      spawn_link(fn ->
        Process.flag(:trap_exit, true)

        port =
          Port.open({:spawn_executable, exe}, [
            :binary,
            :exit_status,
            :stderr_to_stdout,
            args: args,
            env: env,
            cd: System.tmp_dir!()
          ])

        {:os_pid, os_pid} = Port.info(port, :os_pid)
        # Signals go through this guardian, which knows whether its process still runs: OS
        # pids wrap around (pid_max is 32768 here), so a kill by a stale pid could hit a
        # stranger (a compiler, another test's mix).
        {:ok, _} = Registry.register(Dala.Test.OsPids, os_pid, nil)
        send(parent, {ref, os_pid})
        guard_os(port, os_pid, parent)
      end)

    receive do
      {^ref, os_pid} -> os_pid
    after
      5_000 ->
        Process.exit(guardian, :kill)
        raise "could not start #{exe}"
    end
  end

  defp guard_os(port, os_pid, parent) do
    receive do
      {^port, {:data, _}} ->
        guard_os(port, os_pid, parent)

      {:signal, signal, from, tag} ->
        # An exit already reported by the port means the pid is no longer ours to signal.
        receive do
          {^port, {:exit_status, _}} -> send(from, {tag, :gone})
        after
          0 ->
            System.cmd("kill", ["-#{signal}", Integer.to_string(os_pid)], stderr_to_stdout: true)
            send(from, {tag, :ok})
            guard_os(port, os_pid, parent)
        end

      {^port, {:exit_status, _}} ->
        :ok

      {:EXIT, ^parent, _} ->
        System.cmd("kill", ["-KILL", Integer.to_string(os_pid)], stderr_to_stdout: true)

        # Gone (reaped) before this guardian, and so its name, is.
        receive do
          {^port, {:exit_status, _}} -> :ok
        after
          5_000 -> :ok
        end

      {:EXIT, _, _} ->
        guard_os(port, os_pid, parent)
    end
  end

  @doc """
  Stops an OS process started by `start_epmd/2` or `spawn_os/3`, by its OS pid: TERM, then
  KILL after 2 s; returns once it is gone. A process that has already exited is left alone.
  """
  @spec stop_epmd(non_neg_integer()) :: :ok
  def stop_epmd(os_pid) when is_integer(os_pid) and os_pid > 1 do
    signal_os(os_pid, "TERM")

    unless wait_gone(os_pid, 2_000) do
      signal_os(os_pid, "KILL")
      wait_gone(os_pid, 5_000) || raise "OS process #{os_pid} did not exit"
    end

    :ok
  end

  @doc """
  Sends `signal` (e.g. `"STOP"`, `"CONT"`, `"KILL"`) to an OS process started by
  `spawn_os/3`, only while it runs (never to a pid that has been reused since).
  """
  @spec signal_os(non_neg_integer(), String.t()) :: :ok
  def signal_os(os_pid, signal) when is_integer(os_pid) and os_pid > 1 do
    with guardian when is_pid(guardian) <- guardian(os_pid) do
      tag = Process.monitor(guardian)
      send(guardian, {:signal, signal, self(), tag})

      receive do
        {^tag, _} -> Process.demonitor(tag, [:flush])
        {:DOWN, ^tag, _, _, _} -> :ok
      end
    end

    :ok
  end

  @doc """
  Sends `signal` to `os_pid` only while its command line contains `program` (e.g. `"beam"`):
  for OS processes not started by `spawn_os/3`, whose pid may have been reused since (pid_max is
  32768 here). Returns whether it sent the signal.
  """
  @spec signal_if(non_neg_integer(), String.t(), String.t()) :: boolean()
  def signal_if(os_pid, signal, program) do
    case File.read("/proc/#{os_pid}/cmdline") do
      {:ok, cmdline} ->
        cmdline =~ program and
          match?({_, 0}, System.cmd("kill", ["-#{signal}", "#{os_pid}"], stderr_to_stdout: true))

      {:error, _} ->
        false
    end
  end

  # The guardian of an OS process spawn_os/3 started, while it runs (test_helper.exs starts the
  # registry; its keys are integers, so the suite's atom count stays put).
  defp guardian(os_pid) do
    case Registry.lookup(Dala.Test.OsPids, os_pid) do
      [{pid, _}] -> if Process.alive?(pid), do: pid
      [] -> nil
    end
  end

  # Gone once its guardian has seen the exit (the port's exit_status, after the VM reaped it).
  defp wait_gone(os_pid, ms) do
    deadline = System.monotonic_time(:millisecond) + ms

    Stream.repeatedly(fn ->
      gone = guardian(os_pid) == nil
      unless gone, do: Process.sleep(5)
      gone
    end)
    |> Enum.find(fn gone -> gone or System.monotonic_time(:millisecond) > deadline end)
  end

  @doc "A dead tunnel: accepts every connection and closes it at once (adb reverse, laptop side down)."
  @spec dead_tunnel(:inet.port_number()) :: pid()
  def dead_tunnel(port), do: listener(port, fn socket -> :gen_tcp.close(socket) end)

  @doc "Accepts every connection and never answers, keeping the sockets open."
  @spec silent_listener(:inet.port_number()) :: pid()
  def silent_listener(port), do: listener(port, fn _socket -> :keep end)

  @doc "Accepts, reads the request, sends `bytes`, closes."
  @spec garbage_listener(:inet.port_number(), iodata()) :: pid()
  def garbage_listener(port, bytes) do
    listener(port, fn socket ->
      _ = :gen_tcp.recv(socket, 0, 1_000)
      _ = :gen_tcp.send(socket, bytes)
      :gen_tcp.close(socket)
    end)
  end

  @doc "Accepts, reads the request, sends the start of a NAMES reply and closes mid-line."
  @spec half_reply_listener(:inet.port_number()) :: pid()
  def half_reply_listener(port) do
    garbage_listener(port, [<<port::32>>, "name half at po"])
  end

  @doc """
  A TCP forwarder from `listen_port` to `target_port` on loopback, one pair of piping processes
  per connection: a live adb tunnel.
  """
  @spec forwarder(:inet.port_number(), :inet.port_number()) :: pid()
  def forwarder(listen_port, target_port) do
    listener(listen_port, fn client ->
      case :gen_tcp.connect(@loopback, target_port, [:binary, active: false], 1_000) do
        {:ok, upstream} ->
          pid =
            spawn_link(fn ->
              receive do
                :go -> pipe_pair(client, upstream)
              end
            end)

          :ok = :gen_tcp.controlling_process(client, pid)
          :ok = :gen_tcp.controlling_process(upstream, pid)
          send(pid, :go)

        {:error, _} ->
          :gen_tcp.close(client)
      end
    end)
  end

  @doc """
  A forwarder like `forwarder/2` that holds back every connection whose request has EPMD
  opcode `opcode` (e.g. 120, ALIVE2_REQ: a node registering): it reads the request, sends
  `{:held, holder}` to `notify` and forwards nothing until `holder` gets `:release`. Other
  connections are forwarded at once. A tunnel that stalls one kind of request.
  """
  @spec holding_forwarder(:inet.port_number(), :inet.port_number(), byte(), pid()) :: pid()
  def holding_forwarder(listen_port, target_port, opcode, notify) do
    listener(listen_port, fn client ->
      pid =
        spawn_link(fn ->
          receive do
            :go -> hold_or_forward(client, target_port, opcode, notify)
          end
        end)

      :ok = :gen_tcp.controlling_process(client, pid)
      send(pid, :go)
    end)
  end

  defp hold_or_forward(client, target_port, opcode, notify) do
    case :gen_tcp.recv(client, 3, 5_000) do
      {:ok, <<_len::16, ^opcode>> = head} ->
        send(notify, {:held, self()})

        receive do
          :release -> forward_with(client, head, target_port)
        end

      {:ok, head} ->
        forward_with(client, head, target_port)

      {:error, _} ->
        :gen_tcp.close(client)
    end
  end

  defp forward_with(client, head, target_port) do
    case :gen_tcp.connect(@loopback, target_port, [:binary, active: false], 1_000) do
      {:ok, upstream} ->
        :ok = :gen_tcp.send(upstream, head)
        pipe_pair(client, upstream)

      {:error, _} ->
        :gen_tcp.close(client)
    end
  end

  defp pipe_pair(a, b) do
    :ok = :inet.setopts(a, active: :once)
    :ok = :inet.setopts(b, active: :once)
    pipe_loop(a, b)
  end

  defp pipe_loop(a, b) do
    receive do
      {:tcp, ^a, data} ->
        _ = :gen_tcp.send(b, data)
        :inet.setopts(a, active: :once)
        pipe_loop(a, b)

      {:tcp, ^b, data} ->
        _ = :gen_tcp.send(a, data)
        :inet.setopts(b, active: :once)
        pipe_loop(a, b)

      {closed, socket} when closed in [:tcp_closed, :tcp_error] and socket in [a, b] ->
        :gen_tcp.close(a)
        :gen_tcp.close(b)

      {:tcp_error, _, _} ->
        :gen_tcp.close(a)
        :gen_tcp.close(b)
    end
  end

  @doc """
  A peer that keeps sending: accepts, reads the request, sends a NAMES header and `burst` bytes
  of valid NAMES lines at once, then goes on with the same lines one byte per send (as fast as
  the socket takes them), until the client closes. A reply without end that always has a byte
  waiting, so only the client's own deadline, cancel or size bound can end it. Sends
  `{:trickling, pid}` to `notify` (if given) when a connection's burst has gone out.
  """
  @spec streaming_listener(:inet.port_number(), non_neg_integer(), pid() | nil) :: pid()
  def streaming_listener(port, burst \\ 230_000, notify \\ nil) do
    line = "name streaming at port 4242\n"
    lines = String.duplicate(line, div(burst, byte_size(line)))

    listener(port, fn socket ->
      pid =
        spawn_link(fn ->
          receive do
            :go ->
              :ok = :inet.setopts(socket, nodelay: true)
              _ = :gen_tcp.recv(socket, 0, 1_000)
              _ = :gen_tcp.send(socket, [<<port::32>>, lines])
              if notify, do: send(notify, {:trickling, self()})
              trickle(socket, line, 0)
          end
        end)

      :ok = :gen_tcp.controlling_process(socket, pid)
      send(pid, :go)
    end)
  end

  defp trickle(socket, line, i) do
    case :gen_tcp.send(socket, binary_part(line, rem(i, byte_size(line)), 1)) do
      :ok ->
        trickle(socket, line, i + 1)

      {:error, _} ->
        :gen_tcp.close(socket)
    end
  end

  @doc """
  Stops a listener: closes its listen socket and every socket it accepted; waits until it is
  gone. Returns `:closed`, or `:already_closed` when it had ended before.
  """
  @spec stop_listener(pid()) :: :closed | :already_closed
  def stop_listener(pid) do
    result = if Process.alive?(pid), do: :closed, else: :already_closed
    # The sockets of the listener and of the connection processes linked to it. A dead
    # owner's ports close asynchronously, after its monitors fire: wait for them too, so the
    # port can be bound again at once.
    sockets = owned_ports(pid)
    ref = Process.monitor(pid)
    Process.unlink(pid)
    Process.exit(pid, :kill)

    receive do
      {:DOWN, ^ref, :process, ^pid, _} -> :ok
    end

    deadline = System.monotonic_time(:millisecond) + 5_000

    Enum.each(sockets, fn port ->
      Stream.repeatedly(fn ->
        closed = Port.info(port) == nil
        unless closed, do: Process.sleep(2)
        closed or System.monotonic_time(:millisecond) > deadline
      end)
      |> Enum.find(& &1)
    end)

    result
  end

  @doc "How many connections the listener `pid` has accepted so far."
  @spec accepted(pid()) :: non_neg_integer()
  def accepted(pid), do: Keyword.get(dictionary(pid), :accepted, 0)

  defp dictionary(pid) do
    case Process.info(pid, :dictionary) do
      {:dictionary, dict} -> dict
      nil -> []
    end
  end

  defp owned_ports(pid) do
    links = fn p ->
      case Process.info(p, :links) do
        {:links, links} -> links
        nil -> []
      end
    end

    # The listener's links are its sockets, its connection processes and the process that
    # started it, whose own ports (epmds, peers) are not the listener's to wait for.
    own = links.(pid)
    children = Enum.filter(own, &is_pid/1) -- [dictionary(pid)[:started_by]]
    Enum.filter(own ++ Enum.flat_map(children, links), &is_port/1)
  end

  @doc "The number of open file descriptors of this VM (entries of /proc/self/fd)."
  @spec open_fd_count() :: non_neg_integer()
  def open_fd_count, do: length(File.ls!("/proc/self/fd"))

  # A linked process that listens on 127.0.0.1:port and hands each accepted socket to `handle`
  # (in the listener process). Sockets `handle` does not close stay open, owned by the listener,
  # until it exits. Returns once the port is bound.
  defp listener(port, handle) do
    refute_4369!(port)
    parent = self()
    ref = make_ref()

    pid =
      spawn_link(fn ->
        Process.put(:started_by, parent)

        {:ok, ls} =
          :gen_tcp.listen(port, [
            :binary,
            ip: @loopback,
            active: false,
            reuseaddr: true,
            backlog: 128
          ])

        send(parent, {ref, :listening})
        accept_loop(ls, handle)
      end)

    receive do
      {^ref, :listening} -> pid
    after
      5_000 -> raise "listener on port #{port} did not start"
    end
  end

  defp accept_loop(ls, handle) do
    case :gen_tcp.accept(ls) do
      {:ok, socket} ->
        Process.put(:accepted, (Process.get(:accepted) || 0) + 1)
        handle.(socket)
        accept_loop(ls, handle)

      {:error, reason} ->
        exit({:accept_failed, reason})
    end
  end

  defp refute_4369!(4369), do: raise(ArgumentError, "tests must never use port 4369")
  defp refute_4369!(_), do: :ok
end
