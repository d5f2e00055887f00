# Rack (puma): answers "ok SLOT"; puma stops gracefully on TERM.
id = ENV.fetch("WPOOL_WORKER_ID", "?")
run ->(env) { [200, {"Content-Type" => "text/plain"}, ["ok #{id}\n"]] }
