defmodule Dala.Laptop do
  @moduledoc """
  The developer's half of `Dala.Dist`: what `mix dala.devices` and `mix dala.connect` do, as
  functions that return `{:ok, _}` or `{:error, sentence}` (one sentence naming the cause and the
  fix; never a cookie or a secret).

  The laptop's EPMD is `127.0.0.1:<ERL_EPMD_PORT>`, else `127.0.0.1:4369`. A phone reaches it
  through `adb reverse tcp:<epmd> tcp:<epmd>` and registers there as `<app>_<suffix>` with its
  dist port; the laptop reaches that port through `adb forward tcp:<port> tcp:<port>`. Every
  `adb` call goes through `Dala.Laptop.Adb`.
  """

  alias Dala.Dist.Epmd
  alias Dala.Laptop.Adb

  @ip {127, 0, 0, 1}

  @typedoc "A node EPMD holds: its name part and its dist port."
  @type entry :: {name :: String.t(), port :: :inet.port_number()}

  @typedoc "What answers on a dist port: a listener, nothing, or a tunnel that accepts and closes."
  @type probe :: :answers | :closed | :refused

  @doc """
  The laptop's EPMD port: the one this VM's OTP uses (`ERL_EPMD_PORT`, which `erl` turns into
  `-epmd_port`), else 4369. Raises `ArgumentError` naming `ERL_EPMD_PORT` for a bad value (the
  tasks check it first, with `Mix.Dala.epmd_port!/0`).
  """
  @spec epmd_port() :: :inet.port_number()
  def epmd_port, do: Dala.Dist.Epmd.port()

  @doc "The default variable of an app's cookie secret: `<APP upcased>_DIST_COOKIE`."
  @spec default_cookie_env(String.t()) :: String.t()
  def default_cookie_env(app), do: String.upcase(app) <> "_DIST_COOKIE"

  @doc """
  The names the laptop's EPMD on `epmd_port` holds, or the sentence for an EPMD that is not
  running (or something else on its port).
  """
  @spec names(:inet.port_number()) :: {:ok, [entry()]} | {:error, String.t()}
  def names(epmd_port) do
    case Epmd.names(port: epmd_port, timeout: 2_000) do
      {:ok, %{names: names}} ->
        {:ok, Enum.sort(names)}

      {:error, :econnrefused} ->
        {:error,
         "EPMD is not running on this laptop (nothing listens on 127.0.0.1:#{epmd_port}): " <>
           "start it with `epmd -daemon#{port_flag(epmd_port)}`, or set ERL_EPMD_PORT to the " <>
           "port yours listens on."}

      {:error, reason} ->
        {:error,
         "what listens on 127.0.0.1:#{epmd_port} does not answer as EPMD (#{reason}): stop it " <>
           "and start EPMD there with `epmd -daemon#{port_flag(epmd_port)}`, or set ERL_EPMD_PORT " <>
           "to the port your EPMD listens on."}
    end
  end

  defp port_flag(4369), do: ""
  defp port_flag(port), do: " -port #{port}"

  @doc "Whether `name` (an EPMD name) is a node of `app`: `app` itself or `app_<suffix>`."
  @spec app_node?(String.t(), String.t()) :: boolean()
  def app_node?(name, app), do: name == app or String.starts_with?(name, app <> "_")

  @doc """
  The EPMD name of `app` on the device `serial`, by `Dala.Dist.apply_suffix/2` (the phone's own
  rule), or `nil` when the two make no valid node name.
  """
  @spec device_name(String.t(), String.t()) :: String.t() | nil
  def device_name(app, serial) do
    app |> String.to_atom() |> Dala.Dist.apply_suffix(serial) |> Atom.to_string()
  rescue
    ArgumentError -> nil
  end

  @doc """
  Which of `serials` the node `name` belongs to: the serial whose suffix makes `name` (for the
  app part `app`, or, without `app`, for any prefix of `name`), else `nil`.
  """
  @spec device_of(String.t(), [String.t()], String.t() | nil) :: String.t() | nil
  def device_of(name, serials, app \\ nil) do
    Enum.find(serials, fn serial ->
      if app do
        device_name(app, serial) == name
      else
        suffix = serial_suffix(serial)
        suffix != nil and String.ends_with?(name, "_" <> suffix)
      end
    end)
  end

  defp serial_suffix(serial) do
    case device_name("x", serial) do
      "x_" <> suffix -> suffix
      _ -> nil
    end
  end

  @doc """
  What answers on `127.0.0.1:port`: `:answers` (a listener that waits for the client to speak,
  as a dist port does), `:closed` (accepts, then closes at once: an `adb forward` whose device
  side has no listener) or `:refused` (nothing listens).
  """
  @spec probe(:inet.port_number()) :: probe()
  def probe(port) do
    case :gen_tcp.connect(@ip, port, [:binary, active: false], 2_000) do
      {:ok, socket} ->
        result =
          case :gen_tcp.recv(socket, 0, 300) do
            {:error, :timeout} -> :answers
            {:ok, _bytes} -> :answers
            {:error, _closed} -> :closed
          end

        :gen_tcp.close(socket)
        result

      {:error, _reason} ->
        :refused
    end
  end

  ## mix dala.devices

  @typedoc "One node of `devices/1`."
  @type row :: %{
          name: String.t(),
          port: :inet.port_number(),
          auto?: boolean(),
          probe: probe(),
          device: String.t() | nil,
          forward: String.t() | nil,
          shared_with: [String.t()]
        }

  @doc """
  The laptop's view: the EPMD's nodes (of `app` only, when given), each with its port, whether
  the port is `Dala.Dist.Port.auto/1`'s, what answers on it, its device and forward (where adb
  is available), and the other nodes on the same port. Also the adb view: `nil` without adb,
  else `%{serials: [...], reverses: %{serial => [port]}}`.
  """
  @spec devices(String.t() | nil, :inet.port_number()) ::
          {:ok, %{epmd_port: :inet.port_number(), rows: [row()], adb: map() | nil}}
          | {:error, String.t()}
  def devices(app, epmd_port \\ epmd_port()) do
    with {:ok, names} <- names(epmd_port) do
      adb = adb_view()
      forwards = (adb && adb.forwards) || %{}
      serials = (adb && adb.serials) || []

      shown = for {name, _port} = entry <- names, app == nil or app_node?(name, app), do: entry

      # Each answering port costs a short read timeout: probe them side by side.
      probes =
        shown
        |> Task.async_stream(fn {_name, port} -> probe(port) end, timeout: 10_000)
        |> Enum.map(fn {:ok, probe} -> probe end)

      rows =
        for {{name, port}, probe} <- Enum.zip(shown, probes) do
          %{
            name: name,
            port: port,
            auto?: Dala.Dist.Port.auto(name) == port,
            probe: probe,
            device: device_of(name, serials, app),
            forward: forwards[port],
            shared_with: shared_with({name, port}, names)
          }
        end

      {:ok, %{epmd_port: epmd_port, rows: rows, adb: adb && Map.delete(adb, :forwards)}}
    end
  end

  defp adb_view do
    with {:ok, serials} <- Adb.devices() do
      forwards = forwards_or_none()

      reverses =
        Map.new(serials, fn serial ->
          case Adb.reverses(serial) do
            {:ok, ports} -> {serial, ports}
            {:error, _} -> {serial, []}
          end
        end)

      %{serials: serials, forwards: forwards, reverses: reverses}
    else
      {:error, _} -> nil
    end
  end

  # The forwards in place (port => serial); none when adb cannot list them.
  defp forwards_or_none do
    case Adb.forwards() do
      {:ok, forwards} -> forwards
      {:error, _} -> %{}
    end
  end

  ## mix dala.connect

  @doc """
  Step 1 of `mix dala.connect`: `adb reverse tcp:<epmd> tcp:<epmd>` on the chosen device
  (`device`), else on every attached one. Returns the serials, or the sentence naming why not.
  """
  @spec reverse_epmd(String.t() | nil, :inet.port_number()) ::
          {:ok, [String.t()]} | {:error, String.t()}
  def reverse_epmd(device, epmd_port) do
    with {:ok, serials} <- adb_devices(),
         {:ok, chosen} <- chosen_devices(device, serials) do
      Enum.reduce_while(chosen, {:ok, serials}, fn serial, acc ->
        case Adb.reverse(serial, epmd_port) do
          :ok -> {:cont, acc}
          {:error, error} -> {:halt, {:error, adb_failed("reverse tcp:#{epmd_port}", error)}}
        end
      end)
    end
  end

  defp adb_devices do
    case Adb.devices() do
      {:ok, serials} -> {:ok, serials}
      {:error, error} -> {:error, adb_failed("devices", error)}
    end
  end

  defp chosen_devices(nil, []),
    do:
      {:error,
       "adb lists no device: plug the phone in (or start the emulator), or pass --no-adb when " <>
         "the tunnels are already in place."}

  defp chosen_devices(nil, serials), do: {:ok, serials}

  defp chosen_devices(device, serials) do
    if device in serials,
      do: {:ok, [device]},
      else:
        {:error,
         "device #{device} is not attached (adb devices lists: #{list_or_none(serials)}): " <>
           "plug it in, or pick one of those with --device."}
  end

  defp adb_failed(_what, :no_adb),
    do:
      "adb was not found (neither DALA_ADB nor adb on PATH): install the Android platform " <>
        "tools, or pass --no-adb when the tunnels are already in place."

  defp adb_failed(what, {:adb_timeout, ms}),
    do:
      "`adb #{what}` did not answer within #{ms} ms: check the device with `adb devices` " <>
        "(offline or unauthorized?), or pass --no-adb when the tunnels are already in place."

  defp adb_failed(what, {:adb, status, out}),
    do:
      "`adb #{what}` failed with exit status #{status} (#{String.slice(out, 0, 200)}): check " <>
        "the device with `adb devices`, or pass --no-adb when the tunnels are already in place."

  @doc """
  Step 2 of `mix dala.connect`: waits up to `wait_ms` for the app's node in the laptop's EPMD.

  `target` is `{:node, name}` (a node name, with or without `@host`), `{:device, serial}` or
  `:any` (every node of `app`). `tick` is called with the seconds left while it waits, about
  once a second. Returns `{:ok, candidates, all_names}` (candidates non-empty) or the sentence
  listing what is registered.
  """
  @spec await_nodes(
          String.t(),
          term(),
          :inet.port_number(),
          non_neg_integer(),
          (integer() ->
             any())
        ) ::
          {:ok, [entry()], [entry()]} | {:error, String.t()}
  def await_nodes(app, target, epmd_port, wait_ms, tick) do
    deadline = System.monotonic_time(:millisecond) + wait_ms
    await_nodes(app, target, epmd_port, deadline, tick, nil)
  end

  defp await_nodes(app, target, epmd_port, deadline, tick, last_tick) do
    with {:ok, names} <- names(epmd_port) do
      left = deadline - System.monotonic_time(:millisecond)

      case Enum.filter(names, &wanted?(&1, app, target)) do
        [] when left <= 0 ->
          {:error, not_registered(app, target, epmd_port, names)}

        [] ->
          secs = div(left + 999, 1000)
          if secs != last_tick, do: tick.(secs)
          Process.sleep(min(200, left))
          await_nodes(app, target, epmd_port, deadline, tick, secs)

        found ->
          {:ok, found, names}
      end
    end
  end

  defp wanted?({name, _port}, app, :any), do: app_node?(name, app)
  defp wanted?({name, _port}, _app, {:node, node}), do: name == node_name(node)
  defp wanted?({name, _port}, app, {:device, serial}), do: name == device_name(app, serial)

  @doc "The name part of a node name (`\"a@h\"` → `\"a\"`)."
  @spec node_name(String.t()) :: String.t()
  def node_name(node), do: Dala.Dist.Port.name_part(node)

  defp not_registered(app, target, epmd_port, names) do
    registered =
      case names do
        [] -> "nothing is registered"
        names -> "registered: " <> Enum.map_join(names, ", ", fn {n, p} -> "#{n} (port #{p})" end)
      end

    what =
      case target do
        :any ->
          "no node of #{app}"

        {:node, node} ->
          "no node named #{node_name(node)}"

        {:device, serial} ->
          "no node of #{app} for device #{serial} (#{device_name(app, serial)})"
      end

    "#{what} is registered in the laptop's EPMD (127.0.0.1:#{epmd_port}; #{registered}): start " <>
      "#{app} on the phone with `adb reverse tcp:#{epmd_port} tcp:#{epmd_port}` in place, or pick " <>
      "one of the registered nodes."
  end

  defp shared_with({name, port}, names),
    do: for({other, ^port} <- names, other != name, do: other)

  @doc """
  Checks that no other node registered the same dist port as `{name, port}` (the laptop can
  forward one local port to one device only).
  """
  @spec check_shared_port(entry(), [entry()]) :: :ok | {:error, String.t()}
  def check_shared_port({name, port}, names) do
    case shared_with({name, port}, names) do
      [] ->
        :ok

      others ->
        {:error,
         "#{name} and #{Enum.join(others, ", ")} registered the same dist port #{port}: the " <>
           "laptop reaches only one of them through it; give each phone its own port " <>
           "(dist_port: :auto, or DALA_DIST_PORT on one of them)."}
    end
  end

  @doc """
  Step 3 of `mix dala.connect`: `adb forward tcp:P tcp:P` to `serial` for the node's port, unless that
  forward is in place; refuses a port already forwarded to another device.
  """
  @spec forward(entry(), String.t()) :: :ok | {:error, String.t()}
  def forward({name, port}, serial) do
    forwards = forwards_or_none()

    case forwards[port] do
      ^serial ->
        :ok

      nil ->
        case Adb.forward(serial, port) do
          :ok -> :ok
          {:error, error} -> {:error, adb_failed("forward tcp:#{port}", error)}
        end

      other ->
        {:error,
         "port #{port} of #{name} is already forwarded to device #{other}, not #{serial}: give " <>
           "the phones different dist ports (dist_port: :auto, or DALA_DIST_PORT), or remove " <>
           "that forward with `adb -s #{other} forward --remove tcp:#{port}`."}
    end
  end

  @doc """
  Checks that the node's dist port answers on the laptop's loopback; otherwise the sentence
  about the forward.
  """
  @spec check_reachable(entry()) :: :ok | {:error, String.t()}
  def check_reachable({name, port}) do
    case probe(port) do
      :answers ->
        :ok

      other ->
        what = if other == :closed, do: "accepts and closes at once", else: "refuses connections"

        {:error,
         "#{name} is registered with dist port #{port}, but nothing answers on " <>
           "127.0.0.1:#{port} (it #{what}): forward the port to the phone with " <>
           "`adb forward tcp:#{port} tcp:#{port}` (mix dala.connect does so unless --no-adb), " <>
           "and check that the app is still running."}
    end
  end

  @doc """
  The cookie `Dala.Dist.cookie_from_env(cookie_env, app)` derives on the phone, when the secret
  is set here; otherwise the sentence naming the variable (never its value).
  """
  @spec cookie(String.t(), String.t()) :: {:ok, atom()} | {:error, String.t()}
  def cookie(cookie_env, app) do
    case Dala.Dist.Cookie.derive(cookie_env, app) do
      {:ok, cookie} ->
        {:ok, cookie}

      {:generated, _random} ->
        {:error,
         "#{cookie_env} is not set on this laptop: export it with the secret the phone's app " <>
           "was started with (or name another variable with --cookie-env)."}
    end
  rescue
    e in ArgumentError -> {:error, Exception.message(e) <> "."}
  end

  @doc """
  Step 4 of `mix dala.connect`: starts this VM as a hidden node on loopback (a random `dala_connect_<n>@127.0.0.1`),
  sets `cookie` and connects to `node`. A refused handshake is the sentence naming
  `cookie_env` (never the cookie or the secret).
  """
  @spec attach(node(), atom(), String.t()) :: :ok | {:error, String.t()}
  def attach(node, cookie, cookie_env) do
    with :ok <- start_hidden_node() do
      :erlang.set_cookie(cookie)

      if Node.connect(node) == true do
        :ok
      else
        {:error,
         "#{node} refused the handshake: the secret in #{cookie_env} on this laptop differs " <>
           "from the one the phone's app was started with (or the phone's node is not " <>
           "#{node}); export the phone's secret in #{cookie_env}, or name the right variable " <>
           "with --cookie-env."}
      end
    end
  end

  defp start_hidden_node do
    if Node.alive?() do
      :ok
    else
      Application.put_env(:kernel, :inet_dist_use_interface, @ip)
      name = :"dala_connect_#{System.unique_integer([:positive])}_#{System.pid()}@127.0.0.1"

      case :net_kernel.start(name, %{name_domain: :longnames, hidden: true}) do
        {:ok, _} ->
          :ok

        {:error, reason} ->
          {:error,
           "this laptop could not start its own hidden node #{name} " <>
             "(#{inspect(reason, limit: 5)}): check that EPMD runs on 127.0.0.1:#{epmd_port()} " <>
             "and ERL_EPMD_PORT names it."}
      end
    end
  end

  @doc """
  Runs the Elixir expression `expr` on `node` (`Code.eval_string/1` there, over `:erpc`) and
  returns its value, or the sentence for an expression that raised.
  """
  @spec eval(node(), String.t()) :: {:ok, term()} | {:error, String.t()}
  def eval(node, expr) do
    {value, _binding} = :erpc.call(node, Code, :eval_string, [expr], 60_000)
    {:ok, value}
  rescue
    e ->
      {:error,
       "--eval failed on #{node}: #{Exception.message(e) |> String.slice(0, 500)}; " <>
         "fix the expression."}
  catch
    kind, reason ->
      {:error,
       "--eval failed on #{node} (#{kind}: #{inspect(reason, limit: 10)}); fix the expression."}
  end

  @doc false
  # "a, b" or "none": how the tasks print a list.
  def list_or_none([]), do: "none"
  def list_or_none(list), do: Enum.join(list, ", ")
end
