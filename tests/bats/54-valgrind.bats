#!/usr/bin/env bats
# valgrind memcheck of the master through a representative scenario (see
# tests/valgrind.sh): 0 errors, 0 bytes definitely lost.

load ../helpers

@test "valgrind: the master through start, kills, reload, scale, status, stop: 0 errors, 0 definitely lost" {
	command -v valgrind >/dev/null || skip "machine lacks valgrind"
	run without_fd3 timeout -k 5 120 bash "$REPO_ROOT/tests/valgrind.sh"
	# The summary always, the whole report when it failed.
	printf '%s\n' "$output" | sed -n '/^--- valgrind report:/q; s/^/# /p' >&3 || true
	if ((status != 0)); then
		fail "$(printf 'tests/valgrind.sh exited %s:\n%s' "$status" "$output")"
	fi
	assert_line 'PASS: 0 errors, 0 bytes definitely lost'
}
