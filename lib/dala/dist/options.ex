defmodule Dala.Dist.Options do
  @moduledoc false
  # Validation of ensure_started/1's options, in the caller's process, before anything starts.
  # Messages name the option and never echo the cookie.

  import Dala.Dist.Check, only: [ms!: 3, port!: 2, short: 1, type_name: 1]

  @allowed [:node, :cookie, :delay, :dist_port, :listen_interface, :epmd_timeout, :platform]

  @doc false
  def validate!(opts) do
    Dala.Dist.Check.keyword!(opts, "options")

    case Enum.reject(Keyword.keys(opts), &(&1 in @allowed)) do
      [] ->
        :ok

      unknown ->
        raise ArgumentError,
              "unknown option(s) #{inspect(unknown)}; allowed: #{inspect(@allowed)}"
    end

    platform = Keyword.get(opts, :platform, :dala_dist_nif.platform())

    unless platform in [:android, :ios, :host] do
      raise ArgumentError,
            "option :platform must be :android, :ios or :host, got: #{inspect(platform)}"
    end

    default_delay = if platform == :android, do: 3_000, else: 0

    %{
      platform: platform,
      node: Keyword.get(opts, :node),
      # Kept behind a closure from here on: the plan travels in messages and lives in the
      # lifecycle server's state, and a crash report or a call's exit reason prints both.
      # `inspect/1` of a fun shows no captured values.
      cookie: hide(Keyword.get(opts, :cookie)),
      delay: opts |> Keyword.get(:delay, default_delay) |> ms!("option :delay", 0),
      epmd_timeout: opts |> Keyword.get(:epmd_timeout, 10_000) |> ms!("option :epmd_timeout", 1),
      # nil and :auto are resolved once the node's name is known (Identity.resolve_dist_port/2).
      dist_port: dist_port!(Keyword.get(opts, :dist_port)),
      listen_interface: interface!(opts, platform)
    }
  end

  @doc false
  # :node and :cookie are required where this library starts distribution (Android, host).
  def require_identity!(%{node: node, cookie: hidden}) do
    cookie = reveal(hidden)

    unless is_atom(node) and node not in [nil, true, false] do
      raise ArgumentError,
            "option :node must be a node name atom such as :\"my_app@127.0.0.1\", got: #{short(node)}"
    end

    # Long names (net_kernel is started with name_domain: :longnames): without a host OTP
    # would pick this machine's FQDN, which on a phone is not where the laptop reaches it
    # (127.0.0.1 through adb forward), and without a domain the start fails.
    unless node |> Atom.to_string() |> String.contains?("@") do
      raise ArgumentError,
            "option :node must include a host (\"name@host\", such as :\"my_app@127.0.0.1\"), got: #{short(node)}"
    end

    # The rest of the node rules live in the C++ core (node_name.cpp).
    try do
      :dala_dist_nif.validate_node(Atom.to_string(node))
    rescue
      e in ArgumentError -> reraise ArgumentError, "option :node: " <> e.message, __STACKTRACE__
    end

    unless is_atom(cookie) and cookie not in [nil, true, false, :""] do
      # Never inspect the value: it may be a secret given as the wrong type.
      raise ArgumentError,
            "option :cookie must be a non-empty atom (see cookie_from_env/2), got: #{type_name(cookie)}"
    end

    # The handshake digests the cookie with erlang:md5/1, which takes bytes: an atom with a
    # character above U+00FF would crash every handshake (and print the cookie's characters).
    unless cookie |> Atom.to_charlist() |> Enum.all?(&(&1 <= 255)) do
      raise ArgumentError,
            "option :cookie must be an atom of characters U+0000..U+00FF " <>
              "(the distribution handshake cannot use others); see cookie_from_env/2"
    end

    :ok
  end

  @doc false
  # DALA_RELEASE: set to a true value ("1", "true", "yes", "on"; any case, surrounding
  # whitespace ignored) it marks a release build, which starts no distribution.
  def release? do
    case System.get_env("DALA_RELEASE") do
      nil -> false
      value -> String.downcase(String.trim(value)) in ~w(1 true yes on)
    end
  end

  @doc false
  # The cookie of a plan made by validate!/1.
  def reveal(hidden) when is_function(hidden, 0), do: hidden.()

  defp hide(cookie), do: fn -> cookie end

  defp dist_port!(port) when port in [nil, :auto], do: port
  defp dist_port!(port), do: port!(port, "option :dist_port")

  defp interface!(opts, platform) do
    default = if platform == :android, do: {127, 0, 0, 1}, else: nil

    case Keyword.get(opts, :listen_interface, default) do
      nil ->
        nil

      ip when is_tuple(ip) ->
        if :inet.ntoa(ip) != {:error, :einval} do
          ip
        else
          raise ArgumentError,
                "option :listen_interface must be an IP address tuple, got: #{short(ip)}"
        end

      other ->
        raise ArgumentError,
              "option :listen_interface must be an IP address tuple, got: #{short(other)}"
    end
  end
end
