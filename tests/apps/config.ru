sleep ENV.fetch("SLOW", "0").to_f
run ->(env) { [200, {"Content-Type" => "text/plain"}, ["ok\n"]] }
