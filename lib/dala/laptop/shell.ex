defmodule Dala.Laptop.Shell do
  @moduledoc """
  The remote shell of `mix dala.connect`: `iex --remsh` on the phone, in a child process that
  inherits this terminal, with the cookie in a private `HOME`'s `.erlang.cookie` (never on a
  command line), ending with this VM.
  """

  import Bitwise
  alias Dala.Laptop

  # Runs "$0" "$@" on this terminal (a background job's stdin would be /dev/null: keep fd 0 in
  # fd 5 first), kills it when fd 3 (the port's pipe from this VM) ends, exits with its status.
  @wrapper ~S"""
  exec 5<&0
  "$0" "$@" <&5 5<&- 3<&- 4<&- &
  child=$!
  (read -r _ <&3; kill -TERM "$child" 2>/dev/null) 5<&- &
  watcher=$!
  wait "$child"
  status=$?
  kill "$watcher" 2>/dev/null
  exit "$status"
  """

  @doc """
  Runs `iex --remsh phone` as a hidden node on loopback with `cookie`, on this terminal, and
  returns its exit status (or the sentence when there is no `iex`). Stops this VM's own node first, and stops this VM reading standard
  input (the shell reads it from then on): call it last.
  """
  @spec run(node(), atom()) :: non_neg_integer() | {:error, String.t()}
  def run(phone, cookie) do
    case System.find_executable("iex") do
      nil -> {:error, "iex was not found on PATH: install Elixir on this laptop, or use --eval."}
      iex -> run(iex, phone, cookie)
    end
  end

  defp run(iex, phone, cookie) do
    dir = private_dir!()
    cookie_file = Path.join(dir, ".erlang.cookie")

    try do
      File.write!(cookie_file, Atom.to_string(cookie))
      File.chmod!(cookie_file, 0o400)
      shell_name = "dala_shell_#{System.unique_integer([:positive])}_#{System.pid()}"
      # This VM's own node leaves; the shell's node takes over.
      :net_kernel.stop()
      IO.puts(:stderr, "remote shell on #{phone} (Ctrl-C twice, or Ctrl-G q, to leave)")

      args =
        ["--name", "#{shell_name}@127.0.0.1", "--hidden", "--remsh", "#{phone}"] ++
          ["--erl", "-kernel inet_dist_use_interface {127,0,0,1}"]

      release_stdin()

      # The shell inherits this terminal (:nouse_stdio: the port's pipes are fds 3 and 4), and
      # ends when this VM does: the wrapper kills it when fd 3 reaches end of file.
      port =
        Port.open({:spawn_executable, System.find_executable("sh")}, [
          :nouse_stdio,
          :exit_status,
          args: ["-c", @wrapper, iex | args],
          env: [{~c"HOME", String.to_charlist(dir)}]
        ])

      remove_when_registered(dir, shell_name)

      receive do
        {^port, {:exit_status, status}} -> status
      end
    after
      File.rm_rf(dir)
    end
  end

  # mkdir fails when the path exists, so nobody can hand us a directory made in advance.
  defp private_dir! do
    name = "dala-connect-#{System.pid()}-#{:rand.uniform(1 <<< 62)}"
    dir = Path.join(System.tmp_dir!(), name)
    File.mkdir!(dir)
    File.chmod!(dir, 0o700)
    dir
  end

  # The child reads the terminal from now on: this VM's own reader of standard input (the
  # '0/1' port of the `user` process) must not take its keystrokes.
  defp release_stdin do
    Enum.each(Port.list(), fn port ->
      if Port.info(port, :name) == {:name, ~c"0/1"}, do: Port.close(port)
    end)
  end

  # The shell's node has read its cookie once it is registered with EPMD (the cookie is read
  # before the node registers): then the directory goes (bounded; the `after` above removes it
  # in any case).
  defp remove_when_registered(dir, shell_name) do
    epmd = Laptop.epmd_port()

    spawn(fn ->
      deadline = System.monotonic_time(:millisecond) + 60_000

      Stream.repeatedly(fn ->
        case Dala.Dist.Epmd.port_please(shell_name, port: epmd, timeout: 1_000) do
          {:ok, _} ->
            :registered

          _ ->
            Process.sleep(100)
            System.monotonic_time(:millisecond) < deadline || :deadline
        end
      end)
      |> Enum.find(&(&1 in [:registered, :deadline]))

      File.rm_rf(dir)
    end)
  end
end
