defmodule Mix.Tasks.Dala.Cookie do
  @shortdoc "Prints the distribution cookie derived from a secret in an environment variable"
  @moduledoc """
  Prints the distribution cookie that `Dala.Dist.Cookie.from_env/2` derives on the device,
  so the developer's laptop can attach to it:

      $ export MY_APP_DIST_COOKIE=...   # the same secret the app was started with
      $ mix dala.cookie MY_APP_DIST_COOKIE my_app
      e052808221ec1645e4132e10fd9ddd1410a5a0b4176c7c55f00ac6c681bb1f5d

      $ iex --name dev@127.0.0.1 \\
          --cookie "$(MIX_QUIET=1 mix dala.cookie MY_APP_DIST_COOKIE my_app)" \\
          --remsh my_app@127.0.0.1

  The task prints the cookie and a newline and nothing else on standard output. Mix
  itself, though, compiles the project (and, when dala is a dependency, the dependencies)
  before it can find this task, and prints "Compiling N files (.ex)", "Generated ..." and
  "==> dep" lines on standard output when anything was stale. Inside `$(...)` set
  `MIX_QUIET=1` (Mix's own switch for its quiet shell) or run `mix compile` first.
  Compiler warnings and errors go to standard error either way. The task starts no
  application: it only needs the compiled native library.

  Fails (non-zero exit, message on standard error) when the variable is unset or empty,
  instead of printing a random cookie that would match nothing, and when the secret is
  weak (fewer than 16 bytes, or fewer than 8 distinct byte values). The secret is never
  printed.
  """
  use Mix.Task

  @requirements []

  @impl Mix.Task
  def run(args) do
    case args do
      [env_var, app_name] ->
        Mix.Dala.compile_quietly()
        IO.puts(cookie!(env_var, app_name))

      _ ->
        Mix.raise("usage: mix dala.cookie ENV_VAR APP_NAME")
    end
  end

  defp cookie!(env_var, app_name) do
    case Dala.Dist.Cookie.derive(env_var, app_name) do
      {:ok, cookie} ->
        Atom.to_string(cookie)

      {:generated, _random} ->
        Mix.raise(
          "environment variable #{env_var} is not set or is empty: set it to the app's " <>
            "distribution secret (mix dala.cookie never prints a random cookie)"
        )
    end
  rescue
    e in ArgumentError -> Mix.raise(Exception.message(e))
  end
end
