# wpool: a process supervisor for socket servers.
# `make` builds ./wpool; `make check` builds with -Werror and runs every test.

PREFIX	?= /usr/local
BINDIR	?= $(PREFIX)/bin
MANDIR	?= $(PREFIX)/share/man
INCDIR	?= $(PREFIX)/include
LIBDIR	?= $(PREFIX)/lib
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
DESTDIR	?=

CC	?= cc
PKGS	 = libbsd-overlay inih json-c
WARN	 = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wredundant-decls \
	   -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation
CFLAGS	?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) \
	   $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS	 = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ifeq ($(SANITIZE),1)
EXTRA_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined \
		-fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

SRCS	 = $(filter-out src/main.c,$(wildcard src/*.c))
OBJS	 = $(SRCS:.c=.o)
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(UNIT_SRCS:.c=)
TEST_BINS = $(patsubst %.c,%,$(wildcard tests/bin/*.c))
EXAMPLE_BINS = $(patsubst %.c,%,$(wildcard examples/*.c))
# --shim's library (src/shim/), which `make` builds next to wpool.
SHIM	 = src/shim/libwpool-shim.so
# LD_PRELOAD shims the bats tests load into wpool (fault injection).
TEST_SHIMS = $(patsubst %.c,%.so,$(wildcard tests/shim/*.c))

# Debian packages: to build, to test, to benchmark.
DEPS_BUILD = libbsd-dev libinih-dev libjson-c-dev pkg-config gcc make
DEPS_TEST  = bats bats-support bats-assert python3 systemd util-linux ruby strace \
	     procps curl iproute2 mandoc zsh fish gunicorn nodejs python3-yaml \
	     valgrind jq wrk prometheus nginx python3-uvicorn haproxy lighttpd \
	     php-cli puma golang-go golang-github-coreos-go-systemd-dev tmux \
	     bash-completion python3-twisted
# Server::Starter's own client code, for tests/bats/78-starter-port.bats.
DEPS_TEST += libserver-starter-perl libnet-server-ss-prefork-perl starman
DEPS_BENCH = wrk

.PHONY: all deps deps-test deps-bench check unit bats test-bins \
	bench demo install uninstall clean static check-world

all: wpool $(SHIM)

src/%.o: src/%.c src/wpool.h
	$(CC) $(ALL_CFLAGS) -c -o $@ $<
# Where --shim looks first for the library `make install` puts there.
src/shim.o: CFLAGS += -DWPOOL_LIBDIR='"$(LIBDIR)/wpool"'

# --shim's library, preloaded into servers wpool did not build: never
# with the sanitizers (their runtime must come first in a process, and a
# server is not built with them), whatever SANITIZE says.
SHIM_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -fPIC \
	   -fvisibility=hidden $(filter-out -fsanitize=% \
	   -fno-sanitize-recover=% -fno-omit-frame-pointer,$(EXTRA_CFLAGS))
$(SHIM): src/shim/wpool-shim.c
	$(CC) $(SHIM_CFLAGS) -shared -o $@ $< -ldl -lpthread
# The C server the shim is tested in: a plain one, for the same reason.
tests/bin/shim_blocking: tests/bin/shim_blocking.c
	$(CC) $(SHIM_CFLAGS) -o $@ $<
# The master-accept modes' own header.
src/acceptq.o src/balance.o src/channel.o src/inetd.o: src/balance.h

libwpool.a: $(OBJS)
	rm -f $@
	$(AR) rcs $@ $(OBJS)

wpool: src/main.o libwpool.a
	$(CC) $(LDFLAGS) -o $@ src/main.o libwpool.a $(LDLIBS)

# `make static`: ./wpool-static, with no shared library (glibc's libc.a and
# the .a files of libbsd, libmd, inih and json-c), for FROM scratch images.
# Its own objects, built plainly even in a SANITIZE=1 tree (a sanitizer
# cannot link statically).  It has no NSS: src/static/lookup.c stands in
# for the name lookups (--wrap), from /etc/passwd, /etc/group and
# /etc/hosts alone; see there why.
# Optimised for size, unused sections dropped: a smaller text is a smaller
# idle master, as the kernel maps it 64 KiB at a time (bench/02).
STATIC_WRAP = getpwnam getpwuid getgrnam getgrouplist getaddrinfo freeaddrinfo
STATIC_OPT ?= -Os -ffunction-sections -fdata-sections
STATIC_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(STATIC_OPT) \
	   $(filter-out -fsanitize=% -fno-sanitize-recover=% \
	   -fno-omit-frame-pointer,$(EXTRA_CFLAGS)) \
	   $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
STATIC_LDLIBS = $(shell pkg-config --static --libs $(PKGS) 2>/dev/null) -lm
STATIC_OBJS = $(patsubst src/%.c,build/static/%.o,$(wildcard src/*.c) \
	   $(wildcard src/static/*.c))
comma	:= ,

build/static/%.o: src/%.c src/wpool.h
	@mkdir -p $(dir $@)
	$(CC) $(STATIC_CFLAGS) -c -o $@ $<

wpool-static: $(STATIC_OBJS)
	$(CC) -static -Wl,--gc-sections -o $@ $(STATIC_OBJS) \
		$(addprefix -Wl$(comma)--wrap=,$(STATIC_WRAP)) $(STATIC_LDLIBS)

static: wpool-static

tests/unit/test_%: tests/unit/test_%.c tests/unit/tap.h tests/unit/fakesys.h libwpool.a
	$(CC) $(ALL_CFLAGS) -Isrc $(LDFLAGS) -o $@ $< libwpool.a $(LDLIBS)

# Test programs that link the library: the docs test's view of cli.c's
# option table, and the readiness probe's command-line front.
tests/bin/opt_table tests/bin/readyprobe: %: %.c libwpool.a
	$(CC) $(ALL_CFLAGS) -Isrc $(LDFLAGS) -o $@ $< libwpool.a $(LDLIBS)

tests/bin/%: tests/bin/%.c
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

tests/shim/%.so: tests/shim/%.c
	$(CC) $(ALL_CFLAGS) -fPIC -shared $(LDFLAGS) -o $@ $< -ldl

examples/%: examples/%.c
	$(CC) $(ALL_CFLAGS) -Iinclude $(LDFLAGS) -o $@ $<

# Installs what is missing, and nothing when all is there.
define apt_install
	@missing=""; for p in $(1); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(DEPS_BUILD))

deps-test: deps
	$(call apt_install,$(DEPS_TEST))

deps-bench: deps-test
	$(call apt_install,$(DEPS_BENCH))

test-bins: $(TEST_BINS) $(EXAMPLE_BINS) $(TEST_SHIMS) $(SHIM)

# The bats files `check` runs; .ci/run's sanitizer pass leaves out the
# ones that exercise no more of the master than the plain pass does.
BATS_FILES ?= $(wildcard tests/bats/*.bats)

# -Werror here, not in a user's plain `make`.
check: deps-test
	$(MAKE) clean-objs
	$(MAKE) EXTRA_CFLAGS="$(EXTRA_CFLAGS) -Werror" wpool $(UNIT_BINS) test-bins
	prove --exec tests/tap-run $(PROVE_FLAGS) $(UNIT_BINS) $(BATS_FILES)

unit: $(UNIT_BINS)
	prove --exec tests/tap-run $(UNIT_BINS)

bats: wpool test-bins
	prove --exec tests/tap-run tests/bats/*.bats

# Tests against peers' code that Debian does not package, run by hand:
# make check-world EINHORN_LIB=/path/to/einhorn/lib
check-world: wpool test-bins
	prove --exec tests/tap-run tests/world/*.bats

# A plain build first, as for check: a tree left by SANITIZE=1 would
# measure ASan's start-up and speed instead of wpool's.
bench: deps-bench
	$(MAKE) clean-objs
	$(MAKE) wpool static test-bins
	@for b in bench/[0-9]*.sh; do bash $$b || exit 1; done

demo: deps wpool examples/hello
	./wpool -n auto -b 127.0.0.1:8080 -- ./examples/hello

install: wpool $(SHIM)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(LIBDIR)/wpool \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 755 wpool $(DESTDIR)$(BINDIR)/wpool
	install -m 644 $(SHIM) $(DESTDIR)$(LIBDIR)/wpool/libwpool-shim.so
	install -m 644 man/wpool.1 $(DESTDIR)$(MANDIR)/man1/wpool.1
	[ ! -f man/wpool.conf.5 ] || install -m 644 man/wpool.conf.5 \
		$(DESTDIR)$(MANDIR)/man5/wpool.conf.5
	install -m 644 completions/wpool.bash $(DESTDIR)$(BASHCOMPDIR)/wpool
	install -m 644 completions/_wpool $(DESTDIR)$(ZSHCOMPDIR)/_wpool
	install -m 644 completions/wpool.fish $(DESTDIR)$(FISHCOMPDIR)/wpool.fish
	[ ! -f include/wpool-worker.h ] || { install -d $(DESTDIR)$(INCDIR) && \
		install -m 644 include/wpool-worker.h $(DESTDIR)$(INCDIR)/; }

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/wpool $(DESTDIR)$(MANDIR)/man1/wpool.1 \
		$(DESTDIR)$(LIBDIR)/wpool/libwpool-shim.so \
		$(DESTDIR)$(MANDIR)/man5/wpool.conf.5 \
		$(DESTDIR)$(BASHCOMPDIR)/wpool $(DESTDIR)$(ZSHCOMPDIR)/_wpool \
		$(DESTDIR)$(FISHCOMPDIR)/wpool.fish \
		$(DESTDIR)$(INCDIR)/wpool-worker.h

# libFuzzer targets (Debian's clang-14 and libclang-rt-14-dev), one per
# parser of outside input.  FUZZ_SECONDS per target, at most FUZZ_RUNS
# inputs (-1: no limit), mutations seeded by FUZZ_SEED (0: a random seed).
# CI runs a fixed seed and a fixed number of inputs, so that a run is all
# but repeatable: open-ended searching belongs to `make fuzz` before a
# release, not to CI on an unrelated change.
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?= -1
FUZZ_SEED ?= 0
FUZZ_CC	?= clang
FUZZ_TARGETS = listen conf control notify procfs
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=undefined -std=c11 -D_GNU_SOURCE -Isrc \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_OBJS = $(patsubst src/%.c,build/fuzz/%.o,$(SRCS))

.SECONDARY: $(FUZZ_OBJS)

build/fuzz/%.o: src/%.c src/wpool.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(LDLIBS)

deps-fuzz: deps
	$(call apt_install,clang libclang-rt-14-dev)

fuzz: deps-fuzz
	$(MAKE) $(addprefix build/fuzz/fuzz_,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
		work=$$(mktemp -d); \
		echo "fuzz_$$t: $(FUZZ_SECONDS)s, runs $(FUZZ_RUNS), seed $(FUZZ_SEED)"; \
		build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
			-runs=$(FUZZ_RUNS) -seed=$(FUZZ_SEED) \
			-max_len=4096 -print_final_stats=1 \
			-artifact_prefix=build/fuzz/$$t- $$work \
			tests/fuzz/corpus/$$t 2>build/fuzz/$$t.log || \
			{ tail -40 build/fuzz/$$t.log; rm -rf $$work; exit 1; }; \
		grep -E 'stat::number_of_executed_units|stat::new_units_added' \
			build/fuzz/$$t.log | tr '\n' ' '; echo; \
		rm -rf $$work; \
	done

.PHONY: clean-objs fuzz deps-fuzz
clean-objs:
	rm -f src/*.o libwpool.a wpool wpool-static $(UNIT_BINS) $(TEST_BINS) \
		$(EXAMPLE_BINS) $(TEST_SHIMS) $(SHIM)
	rm -rf build/static

clean: clean-objs
	rm -rf build
