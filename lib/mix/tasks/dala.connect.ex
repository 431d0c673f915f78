defmodule Mix.Tasks.Dala.Connect do
  @shortdoc "Attaches to a Dala app's node on a phone: tunnels, wait, cookie, remote shell or --eval"
  @moduledoc """
  Attaches the laptop to a Dala app running on a phone (or an emulator):

      mix dala.connect APP [--node NAME | --device SERIAL] [--cookie-env VAR] [--eval EXPR]
                           [--no-adb] [--wait SECONDS]

  1. With adb (unless `--no-adb`): `adb reverse tcp:E tcp:E` on the chosen device (`--device`),
     else on every attached one, where `E` is the laptop's EPMD port (`ERL_EPMD_PORT`, else
     4369), so the phone's app reaches the laptop's EPMD and registers there.
  2. Waits (up to `--wait` seconds, 30 by default, with a countdown on standard error) for a
     node of `APP` in the laptop's EPMD: `APP` itself or `APP_<suffix>`. `--node NAME` waits for
     that node (`NAME` or `NAME@host`), `--device SERIAL` for the node that suffix makes
     (`Dala.Dist.apply_suffix/2`). With several and neither option, lists them and asks.
  3. With adb: `adb forward tcp:P tcp:P` to the node's device for the dist port `P` it
     registered, unless in place; a port already forwarded to another device is refused.
  4. Starts this VM as a hidden node on loopback with the cookie
     `Dala.Dist.cookie_from_env(VAR, APP)` derives, `VAR` being `--cookie-env`, by default
     `<APP upcased>_DIST_COOKIE` (`my_app` → `MY_APP_DIST_COOKIE`), and connects.
  5. With `--eval EXPR`: evaluates the Elixir expression on the phone (`Code.eval_string/1`
     over `:erpc`), prints the result's `inspect/1` on standard output, and exits 0.
     Without: hands the terminal to `iex --remsh` on the phone. Its cookie is in a
     `.erlang.cookie` file (mode 0400) in a private temporary directory (mode 0700) given to
     `iex` as `HOME`, never on a command line `ps` shows; the directory is deleted once the
     shell's node has registered (it has read the cookie then), and in any case when the shell
     ends. The shell ends with this task's VM.

  On failure it exits with status 1 and one sentence on standard error naming the cause and the
  fix: EPMD not running on the laptop; no node of `APP` registered (and what is registered);
  registered but nothing answering on its port (the forward); two nodes on one port; a port
  forwarded to another device; the handshake refused (the secret in `VAR` differs: the sentence
  names the variable, never its value or the cookie); the secret not set here.
  """
  use Mix.Task

  alias Dala.Laptop

  @switches [
    node: :string,
    device: :string,
    cookie_env: :string,
    eval: :string,
    adb: :boolean,
    wait: :integer
  ]
  @usage "usage: mix dala.connect APP [--node NAME | --device SERIAL] [--cookie-env VAR] " <>
           "[--eval EXPR] [--no-adb] [--wait SECONDS]"

  @impl Mix.Task
  def run(args) do
    {opts, app} = parse!(args)
    Mix.Dala.compile_quietly()
    Mix.Dala.epmd_port!()

    case connect(app, opts) do
      {:ok, phone} -> finish(phone, app, opts)
      {:error, sentence} -> fail(sentence)
    end
  end

  defp parse!(args) do
    case OptionParser.parse(args, strict: @switches) do
      {opts, [app], []} ->
        cond do
          opts[:node] && opts[:device] ->
            Mix.raise("pass --node or --device, not both; " <> @usage)

          (opts[:wait] || 0) < 0 ->
            Mix.raise("--wait must be a number of seconds >= 0; " <> @usage)

          true ->
            {opts, app}
        end

      _ ->
        Mix.raise(@usage)
    end
  end

  defp connect(app, opts) do
    epmd = Laptop.epmd_port()
    adb? = Keyword.get(opts, :adb, true)
    cookie_env = opts[:cookie_env] || Laptop.default_cookie_env(app)

    target =
      cond do
        opts[:node] -> {:node, opts[:node]}
        opts[:device] -> {:device, opts[:device]}
        true -> :any
      end

    with {:ok, _names} <- Laptop.names(epmd),
         {:ok, cookie} <- Laptop.cookie(cookie_env, app),
         {:ok, serials} <-
           if(adb?, do: Laptop.reverse_epmd(opts[:device], epmd), else: {:ok, []}),
         _ =
           if(adb?, do: info("adb reverse tcp:#{epmd} tcp:#{epmd} on #{reversed(opts, serials)}")),
         {:ok, found, names} <-
           Laptop.await_nodes(app, target, epmd, (opts[:wait] || 30) * 1000, &countdown(&1, app)),
         _ = if(Process.delete(:countdown), do: IO.write(:stderr, "\n")),
         {:ok, {name, port} = entry} <- pick(found, serials, app),
         :ok <- Laptop.check_shared_port(entry, names),
         :ok <- if(adb?, do: forward(entry, opts[:device], serials, app), else: :ok),
         :ok <- Laptop.check_reachable(entry),
         phone = :"#{name}@127.0.0.1",
         :ok <- Laptop.attach(phone, cookie, cookie_env) do
      info("connected to #{phone} (dist port #{port})")
      {:ok, phone}
    end
  end

  defp reversed(opts, serials), do: opts[:device] || Enum.join(serials, ", ")

  defp countdown(secs, app) do
    Process.put(:countdown, true)
    IO.write(:stderr, "\rwaiting for a node of #{app} in the laptop's EPMD: #{secs} s left ")
  end

  defp pick([entry], _serials, _app), do: {:ok, entry}

  defp pick(found, serials, app) do
    IO.puts(:stderr, "#{length(found)} nodes of #{app} are registered:")

    found
    |> Enum.with_index(1)
    |> Enum.each(fn {{name, port}, i} ->
      device = Laptop.device_of(name, serials, app)
      IO.puts(:stderr, "  #{i}) #{name}  port #{port}#{if device, do: "  device #{device}"}")
    end)

    names = Enum.map_join(found, ", ", &elem(&1, 0))

    with answer when is_binary(answer) <- IO.gets("pick one [1-#{length(found)}]: "),
         {i, _} when i in 1..length(found)//1 <- Integer.parse(String.trim(answer)) do
      {:ok, Enum.at(found, i - 1)}
    else
      _ ->
        {:error,
         "#{length(found)} nodes of #{app} are registered (#{names}): pick one with " <>
           "--node NAME or --device SERIAL."}
    end
  end

  defp forward({name, port} = entry, device, serials, app) do
    serial =
      device || Laptop.device_of(name, serials, app) ||
        case serials do
          [only] -> only
          _ -> nil
        end

    if serial do
      with :ok <- Laptop.forward(entry, serial) do
        info("adb -s #{serial} forward tcp:#{port} tcp:#{port}")
      end
    else
      info("no attached device matches #{name}: not forwarding port #{port}")
    end
  end

  defp finish(phone, _app, opts) do
    case opts[:eval] do
      nil ->
        Dala.Laptop.Shell.run(phone, Node.get_cookie())
        |> exit_with()

      expr ->
        case Laptop.eval(phone, expr) do
          {:ok, value} -> IO.puts(inspect(value, pretty: true, limit: :infinity))
          {:error, sentence} -> fail(sentence)
        end
    end
  end

  defp exit_with({:error, sentence}), do: fail(sentence)
  defp exit_with(0), do: :ok
  defp exit_with(status), do: exit({:shutdown, status})

  defp info(line), do: IO.puts(:stderr, line)

  defp fail(sentence) do
    if Process.get(:countdown), do: IO.write(:stderr, "\n")
    Mix.shell().error("dala.connect: " <> sentence)
    exit({:shutdown, 1})
  end
end
