defmodule Dala.Dist.CookieTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias Dala.Dist.Cookie

  @moduletag :capture_log

  # Secrets and cookies in this file are random test data; assertions still pass their own
  # messages so that a failure never prints one.

  defp unique_var(tag),
    do: "DALA_COOKIE_TEST_#{tag}_#{System.unique_integer([:positive])}"

  defp with_env(value, fun) do
    var = unique_var("SET")
    System.put_env(var, value)

    try do
      fun.(var)
    after
      System.delete_env(var)
    end
  end

  defp openssl_hkdf(secret, app_name) do
    args =
      ["kdf", "-keylen", "32", "-kdfopt", "digest:SHA256", "-kdfopt", "key:" <> secret] ++
        ["-kdfopt", "salt:dala-dist-cookie-v1", "-kdfopt", "info:" <> app_name, "HKDF"]

    {out, 0} = System.cmd("openssl", args)
    out |> String.trim() |> String.replace(":", "") |> String.downcase()
  end

  @secret_chars String.graphemes(
                  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" <>
                    "!#$%&()*+,-./:;<>?@[]^_{|}~'\"=\\`" <> "éüßøΩЖ日本語🔑🚀"
                )
  @app_chars String.graphemes("abcdefghijklmnopqrstuvwxyz_-0123456789" <> "éñçприложение日本アプリ🚀")
  @ascii_ws [" ", "\t", "\n", "\r", "\v", "\f"]

  defp random_string(chars, n), do: Enum.map_join(1..n, fn _ -> Enum.random(chars) end)

  # A strong secret with inner spaces that starts and ends with a non-space character.
  defp random_secret do
    inner =
      Enum.map_join(1..Enum.random(3..6), " ", fn _ ->
        random_string(@secret_chars, Enum.random(4..12))
      end)

    secret = random_string(@secret_chars, 1) <> inner <> random_string(@secret_chars, 1)

    if byte_size(secret) >= 16 and length(Enum.uniq(:binary.bin_to_list(secret))) >= 8,
      do: secret,
      else: random_secret()
  end

  defp random_app_name do
    name = random_string(@app_chars, Enum.random(1..30))
    if byte_size(name) <= 255, do: name, else: random_app_name()
  end

  defp hex_cookie?(cookie),
    do: is_atom(cookie) and Atom.to_string(cookie) =~ ~r/\A[0-9a-f]{64}\z/

  describe "a secret in the variable" do
    test "equals OpenSSL's HKDF-SHA256 for random secrets and app names" do
      # Arguments reach openssl as UTF-8, the same bytes os:putenv stores for the NIF.
      assert :file.native_name_encoding() == :utf8

      fixed = [
        {"correct horse battery staple", "my_app"},
        {"correct horse battery staple", "приложение"},
        {"pässwörd with spaces 1234", "日本語アプリ"},
        {"0123456789abcdef", "🚀"}
      ]

      random = for _ <- 1..36, do: {random_secret(), random_app_name()}

      for {{secret, app_name}, i} <- Enum.with_index(fixed ++ random) do
        # Leading and trailing ASCII whitespace is trimmed; openssl gets the trimmed secret.
        padded =
          random_string(@ascii_ws, Enum.random(0..3)) <>
            secret <> random_string(@ascii_ws, Enum.random(0..3))

        with_env(padded, fn var ->
          cookie = Cookie.from_env(var, app_name)
          assert hex_cookie?(cookie), "case #{i}: not a 64-char lowercase hex atom"

          assert Atom.to_string(cookie) == openssl_hkdf(secret, app_name),
                 "case #{i} (app #{inspect(app_name)}): cookie differs from openssl's"
        end)
      end
    end

    test "the known vector, and the NIF's return shape" do
      with_env("correct horse battery staple\n", fn var ->
        expected = "e052808221ec1645e4132e10fd9ddd1410a5a0b4176c7c55f00ac6c681bb1f5d"
        assert :dala_dist_nif.cookie_from_env(var, "my_app") == {:ok, expected}
        assert Cookie.from_env(var, "my_app") == String.to_atom(expected)
      end)
    end

    test "two apps never share a cookie; inner spaces count" do
      with_env("correct horse battery staple", fn var ->
        assert Cookie.from_env(var, "app_one") != Cookie.from_env(var, "app_two")
      end)

      a = with_env("correct horse battery staple", &Cookie.from_env(&1, "my_app"))
      b = with_env("correct horse  battery staple", &Cookie.from_env(&1, "my_app"))
      assert a != b
    end

    test "logs nothing that contains the secret or the cookie" do
      secret = random_secret()

      log =
        capture_log(fn ->
          with_env(secret, fn var ->
            cookie = Cookie.from_env(var, "my_app")
            send(self(), {:cookie, Atom.to_string(cookie)})
          end)
        end)

      assert_received {:cookie, cookie}
      refute String.contains?(log, secret), "the secret appears in the log"
      refute String.contains?(log, cookie), "the cookie appears in the log"
    end
  end

  describe "a weak secret" do
    test "shorter than 16 bytes after trimming raises, naming the variable, not the secret" do
      for secret <- ["short", "abcdefghijklmno", "     abcdefghijklmno \n", "é日本語🔑"] do
        with_env(secret, fn var ->
          message =
            "environment variable #{var} holds a weak secret: it must be at least 16 bytes"

          log =
            capture_log(fn ->
              assert_raise ArgumentError, message, fn -> Cookie.from_env(var, "my_app") end
            end)

          refute String.contains?(log, secret)
          assert :dala_dist_nif.cookie_from_env(var, "my_app") == {:error, :weak_short}
        end)
      end
    end

    test "fewer than 8 distinct byte values raises, naming the variable, not the secret" do
      for secret <- ["aaaaaaaaaaaaaaaa", "abcdefgabcdefgabcdefg", String.duplicate("éé", 10)] do
        with_env(secret, fn var ->
          message =
            "environment variable #{var} holds a weak secret: " <>
              "it must contain at least 8 distinct byte values"

          assert_raise ArgumentError, message, fn -> Cookie.from_env(var, "my_app") end
          assert :dala_dist_nif.cookie_from_env(var, "my_app") == {:error, :weak_distinct}
        end)
      end
    end

    test "exactly 16 bytes with exactly 8 distinct values is accepted" do
      with_env("abcdefghabcdefgh", fn var ->
        assert Atom.to_string(Cookie.from_env(var, "x")) == openssl_hkdf("abcdefghabcdefgh", "x")
      end)
    end
  end

  describe "bad arguments" do
    test "env_var" do
      for {env_var, message} <- [
            {123, "env_var must be a binary"},
            {:MY_VAR, "env_var must be a binary"},
            {<<1::3>>, "env_var must be a binary"},
            {"", "env_var must be a non-empty binary"},
            {"A=B", ~s(env_var must not contain "=")},
            {"A\0B", "env_var must not contain NUL bytes"}
          ] do
        assert_raise ArgumentError, message, fn -> Cookie.from_env(env_var, "my_app") end
      end
    end

    test "app_name" do
      var = unique_var("UNSET")

      for {app_name, message} <- [
            {:my_app, "app_name must be a binary"},
            {~c"my_app", "app_name must be a binary"},
            {"", "app_name must be a non-empty binary"},
            {<<0xFF>>, "app_name must be valid UTF-8"},
            {<<0xED, 0xA0, 0x80>>, "app_name must be valid UTF-8"},
            {"app" <> <<0xC3>>, "app_name must be valid UTF-8"},
            {String.duplicate("a", 256), "app_name must be at most 255 bytes, got 256"},
            {String.duplicate("日", 86), "app_name must be at most 255 bytes, got 258"}
          ] do
        assert_raise ArgumentError, message, fn -> Cookie.from_env(var, app_name) end
      end

      # The limit is inclusive, and app names are checked before the secret is looked at.
      with_env("short", fn set_var ->
        assert_raise ArgumentError, "app_name must be valid UTF-8", fn ->
          Cookie.from_env(set_var, <<0xFF>>)
        end
      end)

      with_env("correct horse battery staple", fn set_var ->
        app = String.duplicate("a", 255)

        assert Atom.to_string(Cookie.from_env(set_var, app)) ==
                 openssl_hkdf("correct horse battery staple", app)
      end)
    end

    test "the NIF raises the same ArgumentErrors when called directly" do
      assert_raise ArgumentError, "env_var must be a binary", fn ->
        :dala_dist_nif.cookie_from_env(1, "a")
      end

      assert_raise ArgumentError, "app_name must be a binary", fn ->
        :dala_dist_nif.cookie_from_env("A", :a)
      end

      assert_raise ArgumentError, ~s(env_var must not contain "="), fn ->
        :dala_dist_nif.cookie_from_env("A=", "a")
      end
    end
  end

  describe "a missing secret" do
    test "gives a cookie that is stable within the VM, per app, and warns once per variable" do
      var = unique_var("UNSET")
      blank = unique_var("BLANK")
      System.put_env(blank, " \t\n ")

      log =
        capture_log(fn ->
          cookies =
            1..8
            |> Task.async_stream(fn _ -> Cookie.from_env(var, "my_app") end, max_concurrency: 8)
            |> Enum.map(fn {:ok, c} -> c end)

          send(self(), {:cookies, cookies})
          send(self(), {:other_app, Cookie.from_env(var, "other_app")})
          # Whitespace only counts as missing: same random secret, so the same cookie.
          send(
            self(),
            {:blank, Cookie.from_env(blank, "my_app"), Cookie.from_env(blank, "my_app")}
          )
        end)

      System.delete_env(blank)
      assert_received {:cookies, [first | _] = cookies}
      assert_received {:other_app, other}
      assert_received {:blank, blank_1, blank_2}

      assert hex_cookie?(first)
      assert Enum.uniq(cookies) == [first], "repeated calls disagree"
      assert other != first
      assert blank_1 == first and blank_2 == first, "a blank variable differs from an unset one"

      assert {:generated, hex} = :dala_dist_nif.cookie_from_env(var, "my_app")
      assert hex == Atom.to_string(first)

      warning = "environment variable #{var} is not set"
      assert length(String.split(log, warning)) - 1 == 1, "expected exactly one warning"
      assert length(String.split(log, "environment variable #{blank} is not set")) - 1 == 1
      refute String.contains?(log, Atom.to_string(first)), "the cookie appears in the log"
      refute String.contains?(log, Atom.to_string(other)), "the cookie appears in the log"
    end

    test "differs in a second VM" do
      var = unique_var("UNSET")
      here = Cookie.from_env(var, "my_app")

      pa =
        Path.join(Mix.Project.build_path(), "lib/*/ebin")
        |> Path.wildcard()
        |> Enum.flat_map(&["-pa", &1])

      script = """
      a = Dala.Dist.Cookie.from_env(#{inspect(var)}, "my_app")
      b = Dala.Dist.Cookie.from_env(#{inspect(var)}, "my_app")
      IO.puts("COOKIES #{"\#{a} \#{b}"}")
      """

      {out, status} = System.cmd("elixir", pa ++ ["-e", script], env: [{var, nil}])
      assert status == 0, "the second VM failed"
      assert [_, a, b] = Regex.run(~r/^COOKIES ([0-9a-f]{64}) ([0-9a-f]{64})$/m, out)
      assert a == b, "repeated calls in the second VM disagree"
      assert a != Atom.to_string(here), "two VMs derived the same random cookie"
    end
  end

  # HKDF-SHA256 (RFC 5869) with one output block: what the cookie is, computed here with
  # :crypto for secrets too long for openssl's command line.
  defp hkdf_hex(secret, app_name) do
    prk = :crypto.mac(:hmac, :sha256, "dala-dist-cookie-v1", secret)
    okm = :crypto.mac(:hmac, :sha256, prk, app_name <> <<1>>)
    Base.encode16(okm, case: :lower)
  end

  defp alnum_secret(n) do
    chars = ~c"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    for _ <- 1..n, into: "", do: <<Enum.random(chars)>>
  end

  describe "secrets of any length (issue 13, item 10)" do
    test "are read whole, around every power of two and far beyond 32 KiB" do
      for size <- [255, 256, 257, 32_767, 32_768, 32_769, 65_536, 100_000, 1_000_000] do
        secret = alnum_secret(size)

        with_env(secret, fn var ->
          cookie = Cookie.from_env(var, "my_app")

          assert Atom.to_string(cookie) == hkdf_hex(secret, "my_app"),
                 "a #{size}-byte secret gave another cookie"
        end)
      end
    end

    test "an absurd one (over 16 MiB) raises ArgumentError naming the variable, not the value" do
      secret = alnum_secret(64) |> String.duplicate(div(17 * 1024 * 1024, 64))

      with_env(secret, fn var ->
        error = assert_raise ArgumentError, fn -> Cookie.from_env(var, "my_app") end
        assert error.message =~ var
        assert error.message =~ "16 MiB"
        refute error.message =~ binary_part(secret, 0, 64)
      end)
    end
  end

  describe "mix dala.cookie" do
    @describetag timeout: 180_000

    test "prints the same cookie as the function, and refuses an unset variable" do
      secret = random_secret()
      app_name = "my_app_é"

      with_env(secret, fn var ->
        expected = Atom.to_string(Cookie.from_env(var, app_name))

        {out, status} =
          System.cmd("mix", ["dala.cookie", var, app_name],
            env: [{"MIX_ENV", "test"}, {var, secret}]
          )

        assert status == 0, "mix dala.cookie failed"
        assert out == expected <> "\n", "mix dala.cookie printed something else than the cookie"
      end)

      # A long secret: the cookie, not a stack trace.
      long = alnum_secret(40_000)

      with_env(long, fn var ->
        {out, status} =
          System.cmd("mix", ["dala.cookie", var, app_name],
            env: [{"MIX_ENV", "test"}, {"MIX_QUIET", "1"}, {var, long}],
            stderr_to_stdout: true
          )

        assert status == 0, "mix dala.cookie failed on a 40,000-byte secret"
        assert out == hkdf_hex(long, app_name) <> "\n", "mix dala.cookie printed something else"
      end)

      unset = unique_var("UNSET")

      {out, status} =
        System.cmd("mix", ["dala.cookie", unset, "my_app"],
          env: [{"MIX_ENV", "test"}, {"MIX_QUIET", "1"}, {unset, nil}],
          stderr_to_stdout: true
        )

      assert status != 0
      assert out =~ "** (Mix) environment variable #{unset} is not set or is empty"
      refute out =~ ~r/[0-9a-f]{64}/, "printed a cookie for an unset variable"
    end
  end
end
