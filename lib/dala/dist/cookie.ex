defmodule Dala.Dist.Cookie do
  @moduledoc false
  # Per-app distribution cookies derived from one secret in an environment variable: the
  # implementation of the public Dala.Dist.cookie_from_env/2 (whose doc is the contract) and of
  # `mix dala.cookie`.
  #
  # The cookie is the lowercase hex of HKDF-SHA256 (RFC 5869) with the secret as input keying
  # material, the salt "dala-dist-cookie-v1", the app name as info, and 32 bytes of output. The
  # native library reads the variable itself (enif_getenv), so the secret never enters the BEAM
  # heap; this module only ever sees the derived cookie.

  require Logger

  @typedoc "A distribution cookie: 64 lowercase hex characters, as an atom."
  @type cookie :: atom()

  @doc """
  The distribution cookie for `app_name`, derived from the secret in `env_var`.

    * **Secret set** (non-empty after trimming ASCII whitespace at both ends): the cookie
      is derived from it, so the phone and the developer's laptop agree
      (`mix dala.cookie ENV_VAR APP_NAME` prints the same value), and two apps never
      share a cookie.
    * **Weak secret** (fewer than 16 bytes, or fewer than 8 distinct byte values):
      raises `ArgumentError` naming the variable and the rule, never the secret.
    * **Secret missing** (unset, empty or only whitespace): the cookie is derived from a
      random 32-byte secret drawn once per VM and kept in native memory, so repeated calls
      agree but no other VM can compute it. One warning naming the variable is logged per
      variable per VM.

  Raises `ArgumentError` naming the argument when `env_var` is not a non-empty binary or
  contains `=` or NUL, or `app_name` is not a non-empty valid UTF-8 binary of at most 255
  bytes. The cookie and the secret appear in no log line or exception message.
  """
  @spec from_env(String.t(), String.t()) :: cookie()
  def from_env(env_var, app_name) do
    case derive(env_var, app_name) do
      {:ok, cookie} ->
        cookie

      {:generated, cookie} ->
        warn_once(env_var)
        cookie
    end
  end

  @doc false
  # from_env/2 without the warning; `mix dala.cookie` refuses {:generated, _} instead.
  @spec derive(String.t(), String.t()) :: {:ok, cookie()} | {:generated, cookie()}
  def derive(env_var, app_name) do
    check_binary!(env_var, "env_var")
    check_binary!(app_name, "app_name")

    case :dala_dist_nif.cookie_from_env(env_var, app_name) do
      {tag, hex} when tag in [:ok, :generated] -> {tag, String.to_atom(hex)}
      {:error, reason} -> raise ArgumentError, weak_message(env_var, reason)
    end
  end

  @doc false
  @spec weak_message(String.t(), :weak_short | :weak_distinct) :: String.t()
  def weak_message(env_var, :weak_short),
    do: "environment variable #{env_var} holds a weak secret: it must be at least 16 bytes"

  def weak_message(env_var, :weak_distinct),
    do:
      "environment variable #{env_var} holds a weak secret: " <>
        "it must contain at least 8 distinct byte values"

  # Values are never echoed: a caller who swapped the arguments would leak the secret.
  defp check_binary!(value, _name) when is_binary(value), do: :ok
  defp check_binary!(_value, name), do: raise(ArgumentError, "#{name} must be a binary")

  defp warn_once(env_var) do
    if Dala.Dist.Table.first_time?({:cookie_warned, env_var}) do
      Logger.warning(
        "environment variable #{env_var} is not set: using a random distribution cookie " <>
          "that lives only as long as this VM, so no other node can connect. " <>
          "Set #{env_var} to a secret of at least 16 bytes to allow remote connections."
      )
    end

    :ok
  end
end
