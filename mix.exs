defmodule Mix.Tasks.Compile.DalaNif do
  @shortdoc "Builds priv/dala_dist_nif.so with CMake"
  @moduledoc """
  Builds the native library with CMake on every `mix compile`; CMake decides what is stale.

  Each configuration gets its own build directory under `_build/<env>/native/`, and the
  library it produces is copied to `priv/` when it differs from what is there, so switching
  between configurations (for example the sanitizer build) never leaves a stale library.

  Environment:
    * `DALA_WERROR=1` - treat C++ warnings as errors (CI does).
    * `DALA_SANITIZE=1` - build with `-fsanitize=address,undefined`.
    * `DALA_CMAKE_ARGS` - extra arguments to the CMake configure step.
  """
  use Mix.Task.Compiler

  @lib "dala_dist_nif.so"

  @impl true
  def run(_args) do
    flags = [werror: env_flag("DALA_WERROR"), sanitize: env_flag("DALA_SANITIZE")]
    variant = if flags[:sanitize], do: "sanitize", else: "default"
    build_dir = Path.join([Mix.Project.build_path(), "native", variant])
    out_dir = Path.join(build_dir, "out")

    configure =
      ["-S", File.cwd!(), "-B", build_dir, "-DDALA_BUILD_TESTS=OFF", "-DDALA_PRIV_DIR=#{out_dir}"] ++
        ["-DDALA_WERROR=#{on_off(flags[:werror])}", "-DDALA_SANITIZE=#{on_off(flags[:sanitize])}"] ++
        OptionParser.split(System.get_env("DALA_CMAKE_ARGS", ""))

    with :ok <- cmake(configure, build_dir, :configure),
         :ok <- cmake(["--build", build_dir, "--parallel"], build_dir, :build) do
      install(Path.join(out_dir, @lib), Path.join("priv", @lib))
    end
  end

  defp cmake(args, build_dir, step) do
    # Configure when the arguments change; otherwise `cmake --build` re-runs the configure
    # step by itself whenever CMakeLists.txt changes.
    stamp = Path.join(build_dir, "dala-configure-args")
    wanted = Enum.join(args, "\n")

    if step == :configure and File.read(stamp) == {:ok, wanted} do
      :ok
    else
      case System.cmd("cmake", args, stderr_to_stdout: true) do
        {_output, 0} ->
          if step == :configure, do: File.write!(stamp, wanted)
          :ok

        {output, status} ->
          Mix.shell().error(output)
          Mix.raise("dala: cmake #{step} failed (exit status #{status})")
      end
    end
  end

  defp install(built, target) do
    if File.read(built) == File.read(target) do
      {:noop, []}
    else
      # Copy, then rename into place: a VM that has the old library loaded keeps its mapping
      # intact, where an in-place overwrite would change the pages under it.
      File.mkdir_p!(Path.dirname(target))
      tmp = target <> ".tmp"
      File.cp!(built, tmp)
      File.rename!(tmp, target)
      Mix.shell().info("Compiled #{target}")
      {:ok, []}
    end
  end

  defp env_flag(name), do: System.get_env(name) in ["1", "true", "on", "ON"]
  defp on_off(true), do: "ON"
  defp on_off(false), do: "OFF"
end

defmodule Dala.MixProject do
  use Mix.Project

  @version "0.0.1"

  def project do
    [
      app: :dala,
      version: @version,
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:dala_nif] ++ Mix.compilers(),
      erlc_paths: ["lib"],
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      description: "Start Erlang distribution on a device (iOS, Android) safely and reliably",
      package: [
        licenses: ["Apache-2.0"],
        files: ~w(CMakeLists.txt c_src lib priv/.gitkeep mix.exs rebar.config README.md)
      ]
    ]
  end

  def application do
    [extra_applications: [:logger], mod: {Dala.Application, []}]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
