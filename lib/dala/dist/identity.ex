defmodule Dala.Dist.Identity do
  @moduledoc """
  Node identity for `Dala.Dist`: the per-device node name, the dist port and
  listen interface, and a pre-check that the port can be bound.

  Node names follow the rules net_kernel (OTP 25) applies when distribution
  starts, checked up front so that a bad name is an `ArgumentError` that says
  what is wrong instead of a `:nodistribution` later:

    * the name part matches `^[A-Za-z0-9_-]+$`;
    * the host part, when there is an `@`, is non-empty, has characters in
      U+0021..U+00FF only (net_kernel checks the atom's characters, not its
      UTF-8 bytes) and no second `@`;
    * the whole node is at most 255 characters (code points), the atom limit.

  The rules live in the C++ core (`c_src/core/node_name.cpp`) and are reached
  through `:dala_dist_nif`.
  """

  require Logger

  @default_dist_port 9100
  @suffix_vars ["DALA_NODE_SUFFIX", "dala_NODE_SUFFIX"]
  @port_var "DALA_DIST_PORT"

  @doc """
  Inserts a device suffix into a node name.

  A `nil`, empty or whitespace-only suffix returns `base_node` unchanged (after
  checking it is a valid node name). Otherwise the suffix is trimmed, every
  byte outside `[A-Za-z0-9_-]` becomes `_`, and `_<suffix>` is inserted before
  the `@` (or appended to a bare name).

  Raises `ArgumentError` naming `base_node` or `suffix` when an argument has
  the wrong type, the base is not a valid node name, or the result would be
  longer than 255 characters. No atom is created for rejected input.

      iex> Dala.Dist.Identity.apply_suffix(:"my_app@127.0.0.1", "zy22cr")
      :"my_app_zy22cr@127.0.0.1"
      iex> Dala.Dist.Identity.apply_suffix(:my_app, "zy22cr")
      :my_app_zy22cr
      iex> Dala.Dist.Identity.apply_suffix(:"my_app@127.0.0.1", "192.168.1.20:5555")
      :"my_app_192_168_1_20_5555@127.0.0.1"
      iex> Dala.Dist.Identity.apply_suffix(:"my_app@127.0.0.1", "  ")
      :"my_app@127.0.0.1"
  """
  @spec apply_suffix(atom(), String.t() | nil) :: node()
  def apply_suffix(base_node, suffix) do
    check_base_node!(base_node)

    unless is_nil(suffix) or is_binary(suffix) do
      raise ArgumentError, "suffix must be a string or nil, got: #{short_inspect(suffix)}"
    end

    base = Atom.to_string(base_node)
    # The NIF raises for anything invalid, so the atom below is only made for a
    # valid node name (and the base is valid UTF-8, so the result is too).
    :dala_dist_nif.apply_suffix(base, suffix || "") |> String.to_atom()
  end

  @doc """
  Checks that `node` is a valid node name (see the module doc); returns `:ok`
  or raises `ArgumentError` naming what is wrong.

      iex> Dala.Dist.Identity.validate_node(:"my_app@127.0.0.1")
      :ok
  """
  @spec validate_node(atom()) :: :ok
  def validate_node(node) do
    unless is_atom(node) and not is_nil(node) do
      raise ArgumentError, "node must be an atom, got: #{short_inspect(node)}"
    end

    :dala_dist_nif.validate_node(Atom.to_string(node))
  end

  @doc """
  The device suffix from the environment, or `nil`.

  Reads `DALA_NODE_SUFFIX`, then the spelling of the original docs,
  `dala_NODE_SUFFIX`; the first one set to a non-blank value wins (a blank
  `DALA_NODE_SUFFIX` does not hide a set `dala_NODE_SUFFIX`, since launchers
  often export empty variables). The value is returned as set, untrimmed;
  `apply_suffix/2` trims and sanitises it.
  """
  @spec suffix_from_env() :: String.t() | nil
  def suffix_from_env do
    Enum.find_value(@suffix_vars, fn var ->
      value = System.get_env(var)
      if value != nil and String.trim(value) != "", do: value
    end)
  end

  @doc """
  Resolves the node to start: `base_node` with `suffix` applied (by default the
  suffix from `suffix_from_env/0`).

  Returns `{node, changed?}`, where `changed?` tells whether the suffix changed
  the name (so the caller can log the resolved name once). Raises like
  `apply_suffix/2`.

      iex> Dala.Dist.Identity.resolve_node(:"my_app@127.0.0.1", "zy22cr")
      {:"my_app_zy22cr@127.0.0.1", true}
      iex> Dala.Dist.Identity.resolve_node(:"my_app@127.0.0.1", nil)
      {:"my_app@127.0.0.1", false}
  """
  @spec resolve_node(atom()) :: {node(), boolean()}
  @spec resolve_node(atom(), String.t() | nil) :: {node(), boolean()}
  def resolve_node(base_node, suffix \\ suffix_from_env()) do
    node = apply_suffix(base_node, suffix)
    {node, node != base_node}
  end

  @doc """
  The dist listen port: the `:dist_port` option when given, else
  `DALA_DIST_PORT` when it holds an integer in 1..65535 (surrounding
  whitespace allowed), else #{@default_dist_port}.

  A set `DALA_DIST_PORT` that is not such an integer is ignored with one
  `Logger` warning naming the variable. An option that is neither `nil` nor an
  integer in 1..65535 raises `ArgumentError` naming `dist_port`.

      iex> Dala.Dist.Identity.resolve_dist_port(9200)
      9200
  """
  @spec resolve_dist_port(nil | 1..65535) :: 1..65535
  def resolve_dist_port(port) when is_integer(port) and port in 1..65535, do: port

  def resolve_dist_port(nil) do
    case System.get_env(@port_var) do
      nil ->
        @default_dist_port

      value ->
        case parse_port(value) do
          {:ok, port} ->
            port

          :error ->
            Logger.warning(
              "#{@port_var} must be an integer in 1..65535, got #{short_inspect(value)}; " <>
                "ignoring it and using #{@default_dist_port}"
            )

            @default_dist_port
        end
    end
  end

  def resolve_dist_port(other) do
    raise ArgumentError,
          "dist_port must be an integer in 1..65535 or nil, got: #{short_inspect(other)}"
  end

  @doc """
  Resolves `dist_port: :auto` (or, with no `:dist_port` option, `DALA_DIST_PORT=auto`) for
  `base_node` with the suffix from `suffix_from_env/0`: returns the port of
  `Dala.Dist.Port.auto/2` (9100 + crc32 of the suffixed name part, rem 800) and logs it once
  with the hint to pin a port should it be busy. Any other `port` is returned unchanged. `:auto`
  becomes `nil` when `base_node` or the suffix make no valid node name (the node checks report
  that, and no port is used then); `nil` with `DALA_DIST_PORT` unset or numeric stays `nil`.

      iex> Dala.Dist.Identity.auto_dist_port(9200, :"my_app@127.0.0.1")
      9200
  """
  @spec auto_dist_port(term(), term()) :: term()
  def auto_dist_port(:auto, base_node) do
    name = apply_suffix(base_node, suffix_from_env())
    port = Dala.Dist.Port.auto(name)

    Logger.info(
      "Dala.Dist: dist_port :auto is #{port} for #{name} (9100 + crc32 of the name rem 800); " <>
        "if it is in use, pin a port with :dist_port or #{@port_var}"
    )

    port
  rescue
    ArgumentError -> nil
  end

  def auto_dist_port(nil, base_node) do
    case System.get_env(@port_var) do
      nil ->
        nil

      value ->
        if String.downcase(String.trim(value)) == "auto", do: auto_dist_port(:auto, base_node)
    end
  end

  def auto_dist_port(port, _base_node), do: port

  @doc """
  Configures the `:kernel` application environment that `inet_tcp_dist` reads
  when `:net_kernel` starts (OTP 25 `inet_tcp_dist:gen_listen/4` and
  `listen_options/0`):

    * `inet_dist_listen_min` and `inet_dist_listen_max` are both set to `port`,
      so the listener uses exactly that port;
    * `inet_dist_use_interface` is set to `interface` (an IP tuple, passed as
      the listen socket's `ip` option). With `interface` `nil`, a value this
      function set earlier is removed (the listener binds all interfaces), while
      a user's own setting (`-kernel inet_dist_use_interface ...`) is kept.

  Must be called before `:net_kernel` starts; it has no effect on a running
  listener. Raises `ArgumentError` naming `port` or `interface` for bad values.
  """
  @spec dist_listen_env(1..65535, :inet.ip_address() | nil) :: :ok
  def dist_listen_env(port, interface) do
    check_port!(port)
    check_interface!(interface)
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

  @doc """
  Checks that `port` can be bound on `interface` (`nil` means all interfaces)
  by opening a listen socket with the options `inet_tcp_dist` will use
  (`reuseaddr: true`, `ip: interface`) and closing it at once.

  Returns `:ok`, `{:error, {:port_in_use, port}}` when the address is in use, or
  `{:error, {:port_unavailable, port, reason}}` for any other reason the bind
  fails (for example `:eaddrnotavail` when `interface` is not an address of this
  host, or `:eacces`). This is a pre-check for a clear error: another process
  may still take the port before `:net_kernel` binds it.
  """
  @spec check_port_free(1..65535, :inet.ip_address() | nil) ::
          :ok
          | {:error, {:port_in_use, 1..65535}}
          | {:error, {:port_unavailable, 1..65535, :inet.posix() | term()}}
  def check_port_free(port, interface) do
    check_port!(port)
    check_interface!(interface)

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

    with true <- trimmed =~ ~r/\A[0-9]{1,5}\z/,
         port when port in 1..65535 <- String.to_integer(trimmed) do
      {:ok, port}
    else
      _ -> :error
    end
  end

  defp check_base_node!(base_node) do
    unless is_atom(base_node) and not is_nil(base_node) do
      raise ArgumentError, "base_node must be an atom, got: #{short_inspect(base_node)}"
    end
  end

  defp check_port!(port) do
    unless is_integer(port) and port in 1..65535 do
      raise ArgumentError, "port must be an integer in 1..65535, got: #{short_inspect(port)}"
    end
  end

  defp check_interface!(interface) do
    unless is_nil(interface) or :inet.is_ip_address(interface) do
      raise ArgumentError,
            "interface must be an IP address tuple or nil, got: #{short_inspect(interface)}"
    end
  end

  # Bad input is shown in messages, but never at full length.
  defp short_inspect(term), do: inspect(term, limit: 8, printable_limit: 64)
end
