# Rack (puma): answers "ok SLOT"; puma stops gracefully on TERM.
# SLOW=S: takes S seconds to load, as a large app does.
sleep ENV.fetch("SLOW", "0").to_f
id = ENV.fetch("WPOOL_WORKER_ID", "?")
run ->(env) { [200, {"Content-Type" => "text/plain"}, ["ok #{id}\n"]] }
