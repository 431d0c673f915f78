defmodule Dala.Dist.Port do
  @moduledoc """
  The dist port formula of `dist_port: :auto` (and `DALA_DIST_PORT=auto`), in one place: the
  phone uses it to pick its listen port, the laptop tasks (`mix dala.devices`,
  `mix dala.connect`) use it to tell a derived port from a pinned one.

  The port is derived from the node's **name part** (before `@`) after `DALA_NODE_SUFFIX` has
  been applied, e.g. `"my_app_emulator-5554"`, or `"my_app"` when there is no suffix:

      port = 9100 + rem(:erlang.crc32(name), 800)        # always in 9100..9899

  So it is stable across launches (same app, same suffix, same port), and two phones of one app
  (different suffixes) or two apps on one phone (different names) get different ports without
  configuration, except for the rare pair whose hashes collide (1 in 800 for any two names).
  `mix dala.devices` flags two nodes on one port; pin one of them with `:dist_port` or
  `DALA_DIST_PORT`. A derived port that something else on the phone already holds ends the start
  with `{:failed, {:port_in_use, port}}`, exactly like a pinned one: pin another port then.

  The default without `:auto` stays #{9100} (`default/0`).
  """

  @base 9100
  @size 800

  @doc "The port used when nothing is configured: 9100."
  @spec default() :: 9100
  def default, do: @base

  @doc "The range every derived port falls in: `9100..9899`."
  @spec range() :: Range.t()
  def range, do: @base..(@base + @size - 1)

  @doc """
  The derived port of a node: `9100 + rem(:erlang.crc32(name), 800)`, where `name` is the part
  of `node` before `@` (a node atom or a string; the whole string when it has no `@`).

  Raises `ArgumentError` naming `node` when it is neither an atom nor a string, or its name part
  is empty.

      iex> Dala.Dist.Port.auto(:"my_app_emulator-5554@127.0.0.1")
      9680
      iex> Dala.Dist.Port.auto("my_app_emulator-5554")
      9680
  """
  @spec auto(atom() | String.t()) :: 9100..9899
  def auto(node) when is_atom(node) and node not in [nil, true, false],
    do: auto(Atom.to_string(node))

  def auto(node) when is_binary(node) do
    case name_part(node) do
      "" ->
        raise ArgumentError,
              "node must have a non-empty name part, got: #{Dala.Dist.Check.short(node)}"

      name ->
        @base + rem(:erlang.crc32(name), @size)
    end
  end

  def auto(other) do
    raise ArgumentError,
          "node must be a node name atom or string, got: #{Dala.Dist.Check.short(other)}"
  end

  @doc """
  The derived port of `base_node` (e.g. `:"my_app@127.0.0.1"`) on the device with `suffix`
  (`nil` for none): `auto/1` of `Dala.Dist.apply_suffix(base_node, suffix)`. Raises like
  `Dala.Dist.apply_suffix/2`.

      iex> Dala.Dist.Port.auto(:"my_app@127.0.0.1", "emulator-5554")
      9680
  """
  @spec auto(atom(), String.t() | nil) :: 9100..9899
  def auto(base_node, suffix), do: base_node |> Dala.Dist.apply_suffix(suffix) |> auto()

  @doc false
  # The part of a node name (a string) before `@`; the whole string when it has none.
  @spec name_part(String.t()) :: String.t()
  def name_part(node), do: node |> String.split("@", parts: 2) |> hd()
end
