#!/usr/bin/env bats
# einhorn's own client library acks under wpool: Einhorn::Worker.ack! from
# einhorn's lib/ (github.com/contribsys/einhorn, not packaged by Debian),
# run as `make check-world EINHORN_LIB=/path/to/einhorn/lib`.  The suite
# that CI runs checks the same wire format as einhorn's
# Client::Transport defines it (61-hostile-control.bats); this file runs
# the real code, which only a machine with einhorn's sources has.

load ../helpers
load ../control_helpers

setup() {
	control_setup
	[[ -n ${EINHORN_LIB:-} && -f $EINHORN_LIB/einhorn/worker.rb ]] ||
		fail "EINHORN_LIB must name einhorn's lib/ (with einhorn/worker.rb)"
	command -v ruby >/dev/null || fail "ruby is missing: make deps-test"
}

# An einhorn worker as einhorn's README writes one: ack, then serve.
einhorn_worker() {
	make_script eh.sh <<EOF
#!/bin/sh
exec ruby -I "$EINHORN_LIB" -e 'require "einhorn/worker"
Einhorn::Worker.ack!
\$stderr.puts "acked #{Process.pid}"
sleep 60'
EOF
}

@test "Einhorn::Worker.ack! makes a worker ready, and reloads wait for it" {
	local script
	script=$(einhorn_worker)
	start_wpool -s "$CTL" -n 2 --ready notify -- "$script"
	wait_status 20 '.ready == 2'
	run wp reload
	assert_success
	assert_output --partial "reloaded: 2 workers at generation 1"
	assert_equal "$(log_count '^acked [0-9]+$')" 4
}

teardown() {
	control_teardown
}
