defmodule Dala.Dist.Check do
  @moduledoc false
  # The argument rules of the public API (Dala.Dist and its options, Dala.Dist.Epmd), each in
  # one function with one message. `name` is how the message names the argument ("option
  # :dist_port", "port", "timeout"). Modules behind the public API trust their callers and do
  # not check again; the NIF keeps only what guards its own memory and arithmetic.

  # One ceiling for every millisecond argument: an hour is far beyond any wait this library
  # does, and small enough that no clock arithmetic overflows.
  @max_ms 3_600_000

  @doc false
  @spec port!(term(), String.t()) :: 1..65_535
  def port!(port, _name) when is_integer(port) and port in 1..65_535, do: port

  def port!(other, name),
    do: raise(ArgumentError, "#{name} must be an integer in 1..65535, got: #{short(other)}")

  @doc false
  @spec ms!(term(), String.t(), 0 | 1) :: non_neg_integer()
  def ms!(ms, _name, min) when is_integer(ms) and ms >= min and ms <= @max_ms, do: ms

  def ms!(other, name, min) do
    raise ArgumentError,
          "#{name} must be an integer in #{min}..#{@max_ms} (milliseconds), got: #{short(other)}"
  end

  @doc false
  @spec keyword!(term(), String.t()) :: keyword()
  def keyword!(opts, name) do
    # Only the type: a malformed list or a map may well hold the cookie.
    if Keyword.keyword?(opts) do
      opts
    else
      raise ArgumentError,
            "#{name} must be a keyword list of {atom, value} pairs, got: #{type_name(opts)}"
    end
  end

  @doc false
  # Bounded inspection, so that a huge or binary argument cannot flood a message. Never for a
  # value that may be a secret: use type_name/1 there.
  @spec short(term()) :: String.t()
  def short(term), do: inspect(term, limit: 5, printable_limit: 64)

  @doc false
  @spec type_name(term()) :: String.t()
  def type_name(term) when is_binary(term), do: "a binary"
  def type_name(term) when is_list(term), do: "a list"
  def type_name(term) when is_map(term), do: "a map"
  def type_name(term) when is_integer(term), do: "an integer"
  def type_name(term) when is_atom(term), do: inspect(term)
  def type_name(_term), do: "another term"
end
