# private_helpers.bash: for tests that run something as another user
# (workers under -u nobody, wpool itself under setpriv).  A checkout may
# sit where only its owner can enter (cloned into a 0700 directory, or
# under /root), so what the other user runs is copied to a place every
# user can reach.  Load after ../helpers; call reachable_cleanup from
# teardown, after the pool is stopped.

# reachable_bins: copies wpool and testsrv into a new 0755 directory
# under /tmp (REACHABLE_DIR) and points WPOOL and TESTSRV at the copies,
# for the current test only.
reachable_bins() {
	REACHABLE_DIR=$(mktemp -d /tmp/wpool-bins.XXXXXX) ||
		fail "cannot create a directory under /tmp"
	chmod 0755 "$REACHABLE_DIR"
	install -m 0755 "$WPOOL" "$REACHABLE_DIR/wpool" &&
		install -m 0755 "$TESTSRV" "$REACHABLE_DIR/testsrv" ||
		fail "cannot copy wpool and testsrv into $REACHABLE_DIR"
	WPOOL=$REACHABLE_DIR/wpool
	TESTSRV=$REACHABLE_DIR/testsrv
}

# reachable_cleanup: removes what reachable_bins made, if it did.
reachable_cleanup() {
	[[ -n ${REACHABLE_DIR:-} && -d $REACHABLE_DIR ]] &&
		rm -rf -- "$REACHABLE_DIR"
	REACHABLE_DIR=
	return 0
}
