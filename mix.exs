defmodule Mix.Tasks.Compile.DalaNif do
  @shortdoc "Builds the dala NIF with CMake into the app's _build"
  @moduledoc """
  Builds the native library with CMake on every `mix compile`; CMake decides what is stale.

  Nothing is written into dala's own source tree (which may be a read-only dependency): the
  CMake build directory is `_build/<env>/native/<target>-<variant>/` of the project being
  compiled (the app that depends on dala), one per target and configuration (`host`, or
  `host-<hash>` when `DALA_CMAKE_ARGS` is set; a cross target's name), and the library is
  installed into the app's `_build/<env>/lib/dala/priv/`, where `:code.priv_dir(:dala)` finds it.

  Variants: `release` (optimised, stripped; every environment but `test`), `debug` (MIX_ENV=test:
  RelWithDebInfo, unstripped, for the tests) and `sanitize` (`DALA_SANITIZE=1`).

  Environment:
    * `DALA_WERROR=1` - treat C++ warnings as errors (CI does).
    * `DALA_SANITIZE=1` - build with `-fsanitize=address,undefined`.
    * `DALA_BUILD_TYPE=release|debug` - force a variant.
    * `DALA_CMAKE_TOOLCHAIN_FILE` - cross-compile with this CMake toolchain file (needs
      `-DERTS_INCLUDE_DIR=...` of the target's OTP in `DALA_CMAKE_ARGS`).
    * `DALA_CMAKE_ARGS` - extra arguments to the CMake configure step (e.g.
      `-DDALA_NIF_KIND=static -DSODIUM_ROOT=...`).
    * `DALA_TARGET` - the name of a cross target's build directory and of its `priv/<target>/`
      install directory (default: `cross-` and a hash of the toolchain and arguments).
    * `DALA_CROSS_INSTALL=priv` - install a cross build as the app's own library
      (`priv/dala_dist_nif.so`), for a build path of the target's own (`MIX_BUILD_PATH`).

  A host build installs `priv/dala_dist_nif.so` and checks that it is built for the running VM's
  architecture; a cross build checks it against the toolchain's processor and installs into
  `priv/<target>/`, never over the host's library.
  A missing `cmake`, C++17 compiler, libsodium or `erl_nif.h` stops the build with one message
  naming it and the packages that provide it.
  """
  use Mix.Task.Compiler

  @source_dir __DIR__

  @impl true
  def run(_args) do
    cmake = find_cmake!()
    werror = env_flag("DALA_WERROR")
    sanitize = env_flag("DALA_SANITIZE")
    variant = variant(sanitize)
    {target, build_name, cross_args} = target()
    build_dir = Path.join([Mix.Project.build_path(), "native", "#{build_name}-#{variant}"])
    out_dir = Path.join(build_dir, "out")

    build_type =
      case variant do
        "release" -> ["-DCMAKE_BUILD_TYPE=Release", "-DDALA_STRIP=ON"]
        _ -> ["-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DDALA_STRIP=OFF"]
      end

    configure =
      ["-S", @source_dir, "-B", build_dir, "-DDALA_BUILD_TESTS=OFF", "-DDALA_PRIV_DIR=#{out_dir}"] ++
        build_type ++
        ["-DDALA_WERROR=#{on_off(werror)}", "-DDALA_SANITIZE=#{on_off(sanitize)}"] ++ cross_args

    with :ok <- cmake(cmake, configure, build_dir, :configure),
         :ok <- cmake(cmake, ["--build", build_dir, "--parallel", jobs()], build_dir, :build) do
      install(out_dir, build_dir, target)
    end
  end

  defp find_cmake! do
    System.find_executable("cmake") ||
      Mix.raise(
        "dala: missing cmake: the NIF is built with CMake 3.20+ " <>
          "(Debian: apt-get install cmake; Homebrew: brew install cmake)"
      )
  end

  defp variant(true), do: "sanitize"

  defp variant(false) do
    case System.get_env("DALA_BUILD_TYPE") do
      t when t in ["release", "debug"] -> t
      nil -> if Mix.env() == :test, do: "debug", else: "release"
      other -> Mix.raise("dala: DALA_BUILD_TYPE must be release or debug, not #{inspect(other)}")
    end
  end

  # {"host" or the cross target's name, its build directory's name, the extra CMake arguments}.
  defp target do
    toolchain = System.get_env("DALA_CMAKE_TOOLCHAIN_FILE", "")
    extra = OptionParser.split(System.get_env("DALA_CMAKE_ARGS", ""))

    toolchain_args =
      if toolchain == "", do: [], else: ["-DCMAKE_TOOLCHAIN_FILE=#{Path.expand(toolchain)}"]

    args = toolchain_args ++ extra
    cross? = Enum.any?(args, &(&1 =~ ~r/^-DCMAKE_(TOOLCHAIN_FILE|SYSTEM_NAME)(:[A-Z]+)?=/))

    name =
      cond do
        not cross? -> "host"
        (t = System.get_env("DALA_TARGET", "")) != "" -> t
        true -> "cross-" <> hash(args)
      end

    # One build directory per configuration: a host build with extra arguments gets its own.
    build_name = if not cross? and args != [], do: "host-" <> hash(args), else: name
    {name, build_name, args}
  end

  defp hash(args), do: Integer.to_string(:erlang.phash2(args, 4_294_967_296), 16)

  defp jobs, do: System.get_env("DALA_JOBS", "#{System.schedulers_online()}")

  defp cmake(cmake, args, build_dir, step) do
    # Configure when the arguments change; otherwise `cmake --build` re-runs the configure
    # step by itself whenever CMakeLists.txt changes.
    stamp = Path.join(build_dir, "dala-configure-args")
    wanted = Enum.join(args, "\n")

    if step == :configure and File.read(stamp) == {:ok, wanted} do
      :ok
    else
      case System.cmd(cmake, args, stderr_to_stdout: true) do
        {_output, 0} ->
          if step == :configure, do: File.write!(stamp, wanted)
          :ok

        {output, status} ->
          # A failed configure leaves its findings (a compiler NOTFOUND) in the cache: start
          # afresh next time, when the missing tool may be there.
          if step == :configure, do: Enum.each([stamp, cache(build_dir)], &File.rm/1)

          case missing_tool(output) do
            nil ->
              Mix.shell().error(output)
              Mix.raise("dala: cmake #{step} failed (exit status #{status})")

            message ->
              Mix.raise(message)
          end
      end
    end
  end

  defp cache(build_dir), do: Path.join(build_dir, "CMakeCache.txt")

  # CMakeLists.txt words a missing tool as "dala: missing <tool>: <how to get it>"; CMake wraps
  # and indents it: one line again.
  defp missing_tool(output) do
    lines = String.split(output, "\n")

    case Enum.drop_while(lines, &(not String.starts_with?(String.trim(&1), "dala: missing"))) do
      [] ->
        nil

      [first | rest] ->
        more = Enum.take_while(rest, &(String.trim(&1) != "" and String.starts_with?(&1, " ")))
        Enum.map_join([first | more], " ", &String.trim/1)
    end
  end

  defp install(out_dir, build_dir, target) do
    priv = Path.join(Mix.Project.app_path(), "priv")
    install_as_app? = System.get_env("DALA_CROSS_INSTALL") == "priv"
    unlink_source_priv(priv)

    # The library this configuration builds (a reconfigured directory may hold the other kind).
    info = File.read!(Path.join(build_dir, "dala-target.txt"))
    name = if info =~ ~r/\bkind=static\b/, do: "dala_dist_nif.a", else: "dala_dist_nif.so"
    built = Path.join(out_dir, name)

    dest =
      if target == "host" or install_as_app?,
        do: Path.join(priv, name),
        else: Path.join([priv, target, name])

    check_target(built, build_dir, target)
    copy_if_changed(built, dest)
  end

  # Older checkouts built into dala's own priv/, which Mix then links into _build: replace such a
  # link with a directory of the app's own.
  defp unlink_source_priv(priv) do
    case :file.read_link_info(priv) do
      {:ok, info} when elem(info, 2) == :symlink ->
        File.rm!(priv)
        File.mkdir_p!(priv)

      _ ->
        File.mkdir_p!(priv)
    end
  end

  # A cross build must have used its toolchain (CMakeLists.txt writes what it compiled for); a
  # host build must match the VM that will load it.
  defp check_target(built, build_dir, target) do
    info = File.read!(Path.join(build_dir, "dala-target.txt"))

    if target != "host" and not String.contains?(info, "crosscompiling=TRUE") do
      Mix.raise(
        "dala: the cross build in #{build_dir} did not use a toolchain (#{String.trim(info)}); " <>
          "remove that directory and check DALA_CMAKE_TOOLCHAIN_FILE"
      )
    end

    {arch, want} =
      if target == "host" do
        arch = to_string(:erlang.system_info(:system_architecture))
        {"this VM (#{arch})", machine(arch)}
      else
        [_, processor] = Regex.run(~r/processor=(\S*)/, info)
        {"the toolchain's processor (#{processor})", machine(processor)}
      end

    case {elf_machine(built), want} do
      {m, m} ->
        :ok

      {m, want} when is_integer(m) and is_integer(want) ->
        Mix.raise(
          "dala: #{built} is built for ELF machine #{m}, but #{arch} needs #{want}; " <>
            "remove #{build_dir} and check the toolchain"
        )

      _unknown ->
        :ok
    end
  end

  # The ELF machine of a shared library, or of the first object in a static archive.
  defp elf_machine(path) do
    bytes = File.read!(path)

    case :binary.match(bytes, <<0x7F, "ELF">>) do
      {at, _} ->
        case binary_part(bytes, at, min(20, byte_size(bytes) - at)) do
          <<0x7F, "ELF", _::binary-size(14), machine::little-16>> -> machine
          _ -> :not_elf
        end

      :nomatch ->
        :not_elf
    end
  end

  # An architecture name (the VM's system_architecture, CMAKE_SYSTEM_PROCESSOR) as an ELF machine.
  defp machine(arch) do
    cond do
      arch =~ ~r/^(x86_64|amd64)/i -> 62
      arch =~ ~r/^(aarch64|arm64)/i -> 183
      arch =~ ~r/^arm/i -> 40
      arch =~ ~r/^i[3-6]86/ -> 3
      arch =~ ~r/^riscv64/ -> 243
      true -> nil
    end
  end

  defp copy_if_changed(built, target) do
    if File.read(built) == File.read(target) do
      {:noop, []}
    else
      # Copy, then rename into place: a VM that has the old library loaded keeps its mapping
      # intact, where an in-place overwrite would change the pages under it.
      File.mkdir_p!(Path.dirname(target))
      tmp = target <> ".tmp"
      File.cp!(built, tmp)
      File.rename!(tmp, target)
      Mix.shell().info("Compiled #{Path.relative_to_cwd(target)}")
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
        files: ~w(CMakeLists.txt c_src cross lib mix.exs rebar.config README.md)
      ]
    ]
  end

  def application do
    [extra_applications: [:logger], mod: {Dala.Application, []}]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
