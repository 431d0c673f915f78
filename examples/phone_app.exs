# The "phone": what a Dala app does at start on Android, run as its own BEAM by
# android_dev_loop.exs. Its environment plays the device: ERL_EPMD_PORT is the phone's
# loopback port where `adb reverse` ends, DALA_NODE_SUFFIX the device serial, and
# DALA_DEMO_SECRET the secret the app's cookie is derived from.
#
#     elixir -pa <dala ebin> examples/phone_app.exs DELAY_MS DIST_PORT
#
# Every line "PHONE <wall clock in µs> <event> <detail>" is an event for the demo's timeline;
# other lines are the app's log.
[delay, dist_port] = Enum.map(System.argv(), &String.to_integer/1)

say = fn event, detail -> IO.puts("PHONE #{System.os_time(:microsecond)} #{event} #{detail}") end

# The library's log lines become timeline events too, stamped when they are written.
defmodule PhoneLog do
  def format(level, message, _timestamp, _metadata) do
    "PHONE #{System.os_time(:microsecond)} log [#{level}] #{message}\n"
  end
end

{:ok, _} = Application.ensure_all_started(:dala)
Logger.configure_backend(:console, format: {PhoneLog, :format}, colors: [enabled: false])
say.("boot", "os_pid=#{System.pid()} #{Dala.Dist.status() |> inspect()}")

# The app's start: a cookie from the secret, then distribution in the background.
cookie = Dala.Dist.cookie_from_env("DALA_DEMO_SECRET", "demo_app")

:ok =
  Dala.Dist.ensure_started(
    platform: :android,
    node: :"demo_app@127.0.0.1",
    cookie: cookie,
    delay: delay,
    dist_port: dist_port,
    epmd_timeout: 20_000
  )

# The app runs on and shows where distribution is (a diagnostics screen would call status/0).
# Once distribution has been stopped it says it is still alive, and keeps running.
watch = fn watch, last, started? ->
  status = Dala.Dist.status()

  if status != last do
    say.("status", inspect(status))

    if started? and status == :idle do
      {uptime_ms, _} = :erlang.statistics(:wall_clock)

      say.(
        "alive",
        "still running after stop: uptime #{uptime_ms} ms, Node.alive?() = #{Node.alive?()}"
      )
    end
  end

  Process.sleep(1)
  watch.(watch, status, started? or match?({:started, _}, status))
end

watch.(watch, :idle, false)
