#!/usr/bin/env bats
# wpool -m balance --shim: unmodified servers from Debian's packages (and
# a blocking C server that knows nothing of wpool) in balance mode, with
# libwpool-shim.so preloaded: the channel at fd 3 is their listener.  For
# each one: while a worker serves a slow request, least-conn sends every
# new connection to the other one; every connection is reported closed;
# --max-requests recycles workers with no request failed
# (tests/shim_helpers.bash).  Then the shim's corners (dup, fork,
# shutdown, ip-hash) with a small python server, and what wpool refuses.

load ../helpers
load ../balance_helpers
load ../shim_helpers

setup() {
	shim_setup
}

teardown() {
	bal_teardown
}

@test "gunicorn (sync) under the shim" {
	shim_needs gunicorn
	shim_server gunicorn -- gunicorn -w 1 -k sync wsgi:app
}

@test "gunicorn (gthread) under the shim" {
	shim_needs gunicorn
	shim_server gunicorn -- gunicorn -w 1 -k gthread --threads 4 wsgi:app
}

@test "uvicorn --fd 3 under the shim" {
	/usr/bin/python3 -c 'import uvicorn' 2>/dev/null ||
		fail "python3-uvicorn is not installed: run make deps-test (DEPS_TEST)"
	shim_server uvicorn -- /usr/bin/python3 -m uvicorn --no-access-log --fd 3 asgi:app
}

@test "node listen({fd: 3}) under the shim" {
	shim_needs node
	shim_server node -- node app.js
}

@test "PHP CLI socket_import_stream + socket_accept under the shim" {
	shim_needs php
	shim_server php -- php app.php
}

@test "a blocking C server under the shim" {
	shim_server c -- "$SHIM_C"
}
