#!/usr/bin/env bats
# make install / make uninstall honour PREFIX and DESTDIR and put the
# completions where bash-completion, zsh and fish look for them.

load ../helpers

@test "make install puts binary, man pages, completions and the worker header under DESTDIR/PREFIX; uninstall removes them" {
	local dest=$BATS_TEST_TMPDIR/root
	run make -s -C "$BATS_TEST_DIRNAME/../.." install DESTDIR="$dest" PREFIX=/usr
	assert_success
	local f
	for f in usr/bin/wpool usr/share/man/man1/wpool.1 usr/share/man/man5/wpool.conf.5 \
		usr/share/bash-completion/completions/wpool \
		usr/share/zsh/vendor-completions/_wpool \
		usr/share/fish/vendor_completions.d/wpool.fish \
		usr/include/wpool-worker.h; do
		[[ -f $dest/$f ]] || fail "missing $f"
	done
	[[ -x $dest/usr/bin/wpool ]] || fail "wpool is not executable"
	run "$dest/usr/bin/wpool" --version
	assert_output --regexp '^wpool [0-9]'
	run make -s -C "$BATS_TEST_DIRNAME/../.." uninstall DESTDIR="$dest" PREFIX=/usr
	assert_success
	run find "$dest" -type f
	assert_output ""
}
