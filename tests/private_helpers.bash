# private_helpers.bash: for tests that run something as another user
# (workers under -u nobody, wpool or an attacker under setpriv).  A
# checkout may sit where only its owner can enter (cloned into a 0700
# directory, or under /root), so what the other user runs is copied to a
# place every user can reach.  Load after ../helpers; call
# reachable_cleanup from teardown, after the pool is stopped.

# reachable_copy FILE...: copies each FILE (mode 0755) into REACHABLE_DIR,
# a new 0755 directory under /tmp made on the first call of the test.
reachable_copy() {
	if [[ -z ${REACHABLE_DIR:-} ]]; then
		REACHABLE_DIR=$(mktemp -d /tmp/wpool-bins.XXXXXX) ||
			fail "cannot create a directory under /tmp"
		chmod 0755 "$REACHABLE_DIR"
	fi
	local f
	for f in "$@"; do
		install -m 0755 "$f" "$REACHABLE_DIR/" ||
			fail "cannot copy $f into $REACHABLE_DIR"
	done
}

# reachable_bins: copies wpool and testsrv there and points WPOOL and
# TESTSRV at the copies, for the current test only.
reachable_bins() {
	reachable_copy "$WPOOL" "$TESTSRV"
	WPOOL=$REACHABLE_DIR/${WPOOL##*/}
	TESTSRV=$REACHABLE_DIR/${TESTSRV##*/}
}

# reachable_cleanup: removes what reachable_copy made, if it did.
reachable_cleanup() {
	[[ -n ${REACHABLE_DIR:-} && -d $REACHABLE_DIR ]] &&
		rm -rf -- "$REACHABLE_DIR"
	REACHABLE_DIR=
	return 0
}
