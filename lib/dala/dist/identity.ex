defmodule Dala.Dist.Identity do
  @moduledoc false
  # Node identity behind `Dala.Dist`: the per-device node name, the dist port and listen
  # interface, and a pre-check that the port can be bound. Private: the public API
  # (`Dala.Dist.apply_suffix/2`, `Dala.Dist.Options`) has validated every argument, so nothing
  # here checks again.
  #
  # Node names follow the rules net_kernel (OTP 25) applies when distribution starts; they live
  # in the C++ core (c_src/core/node_name.cpp) and are reached through :dala_dist_nif, which
  # raises ArgumentError naming what is wrong, so an atom is only made for a valid name:
  #   * the name part matches ^[A-Za-z0-9_-]+$;
  #   * the host part, when there is an @, is non-empty, has characters in U+0021..U+00FF only
  #     (net_kernel checks the atom's characters, not its UTF-8 bytes) and no second @;
  #   * the whole node is at most 255 characters (code points), the atom limit.

  require Logger

  @default_dist_port 9100
  @suffix_vars ["DALA_NODE_SUFFIX", "dala_NODE_SUFFIX"]
  @port_var "DALA_DIST_PORT"

  @doc false
  # `base_node` (an atom) with the trimmed, sanitised suffix inserted as `_<suffix>` before the
  # `@` (see Dala.Dist.apply_suffix/2). Raises ArgumentError from the core for an invalid result.
  @spec apply_suffix(atom(), String.t() | nil) :: node()
  def apply_suffix(base_node, suffix) do
    base_node
    |> Atom.to_string()
    |> :dala_dist_nif.apply_suffix(suffix || "")
    |> String.to_atom()
  end

  @doc false
  # The device suffix from the environment, or nil: DALA_NODE_SUFFIX, then the spelling of the
  # original docs, dala_NODE_SUFFIX; the first one set to a non-blank value wins (a blank
  # DALA_NODE_SUFFIX does not hide a set dala_NODE_SUFFIX, since launchers often export empty
  # variables). Returned untrimmed: apply_suffix/2 trims and sanitises it.
  @spec suffix_from_env() :: String.t() | nil
  def suffix_from_env do
    Enum.find_value(@suffix_vars, fn var ->
      value = System.get_env(var)
      if value != nil and String.trim(value) != "", do: value
    end)
  end

  @doc false
  # The dist listen port of `node` (already suffixed): the :dist_port option when it is a port;
  # with :auto, the port Dala.Dist.Port derives from the node's name; with no option,
  # DALA_DIST_PORT (a port, or "auto"; surrounding whitespace and case ignored); else 9100. A
  # DALA_DIST_PORT that is neither is ignored with one warning naming the variable.
  @spec resolve_dist_port(nil | :auto | 1..65_535, node()) :: 1..65_535
  def resolve_dist_port(port, _node) when is_integer(port), do: port

  def resolve_dist_port(:auto, node) do
    port = Dala.Dist.Port.auto(node)

    Logger.info(
      "Dala.Dist: dist_port :auto is #{port} for #{node} (9100 + crc32 of the name rem 800); " <>
        "if it is in use, pin a port with :dist_port or #{@port_var}"
    )

    port
  end

  def resolve_dist_port(nil, node) do
    case System.get_env(@port_var) do
      nil ->
        @default_dist_port

      value ->
        case parse_port(value) do
          {:ok, port_or_auto} ->
            resolve_dist_port(port_or_auto, node)

          :error ->
            Logger.warning(
              "#{@port_var} must be an integer in 1..65535 or \"auto\", got " <>
                "#{Dala.Dist.Check.short(value)}; ignoring it and using #{@default_dist_port}"
            )

            @default_dist_port
        end
    end
  end

  @doc false
  # Configures the :kernel environment that inet_tcp_dist reads when :net_kernel starts (OTP 25
  # inet_tcp_dist:gen_listen/4 and listen_options/0): inet_dist_listen_min and _max both `port`,
  # so the listener uses exactly that port, and inet_dist_use_interface `interface`. With
  # `interface` nil, a value this function set earlier is removed (the listener binds all
  # interfaces), while a user's own -kernel inet_dist_use_interface is kept. Must run before
  # :net_kernel starts; it has no effect on a running listener.
  @spec dist_listen_env(1..65_535, :inet.ip_address() | nil) :: :ok
  def dist_listen_env(port, interface) do
    Application.put_env(:kernel, :inet_dist_listen_min, port)
    Application.put_env(:kernel, :inet_dist_listen_max, port)

    cond do
      interface ->
        Application.put_env(:kernel, :inet_dist_use_interface, interface)
        Application.put_env(:dala, :dist_interface_set, interface)

      # Undo only what this library set: a user's own -kernel inet_dist_use_interface stays.
      Application.fetch_env(:kernel, :inet_dist_use_interface) ==
          Application.fetch_env(:dala, :dist_interface_set) ->
        Application.delete_env(:kernel, :inet_dist_use_interface)
        Application.delete_env(:dala, :dist_interface_set)

      true ->
        :ok
    end

    :ok
  end

  @doc false
  # Whether `port` can be bound on `interface` (nil: all interfaces), with the options
  # inet_tcp_dist will use (reuseaddr, ip): the socket is closed at once. A pre-check for a
  # clear error; another process may still take the port before :net_kernel binds it.
  @spec check_port_free(1..65_535, :inet.ip_address() | nil) ::
          :ok
          | {:error, {:port_in_use, 1..65_535}}
          | {:error, {:port_unavailable, 1..65_535, :inet.posix() | term()}}
  def check_port_free(port, interface) do
    ip_opts =
      case interface do
        nil -> []
        {_, _, _, _} -> [ip: interface]
        ipv6 -> [:inet6, ip: ipv6]
      end

    case :gen_tcp.listen(port, [:binary, active: false, reuseaddr: true] ++ ip_opts) do
      {:ok, socket} ->
        :ok = :gen_tcp.close(socket)

      {:error, :eaddrinuse} ->
        {:error, {:port_in_use, port}}

      {:error, reason} ->
        {:error, {:port_unavailable, port, reason}}
    end
  end

  defp parse_port(value) do
    trimmed = String.trim(value)

    cond do
      String.downcase(trimmed) == "auto" ->
        {:ok, :auto}

      trimmed =~ ~r/\A[0-9]{1,5}\z/ and String.to_integer(trimmed) in 1..65_535 ->
        {:ok, String.to_integer(trimmed)}

      true ->
        :error
    end
  end
end
