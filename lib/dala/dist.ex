defmodule Dala.Dist do
  @moduledoc """
  Platform-aware Erlang distribution startup for Dala apps.
  """

  @typedoc "The platform this build of the library was compiled for."
  @type platform :: :android | :ios | :host

  @doc """
  The platform the native library was compiled for: `:android`, `:ios` or `:host`.

  Decided at compile time from the C++ target macros (`__ANDROID__`, Apple's
  `TARGET_OS_IPHONE`), never from environment variables.

      iex> Dala.Dist.platform()
      :host
  """
  @spec platform() :: platform()
  def platform, do: :dala_dist_nif.platform()
end
