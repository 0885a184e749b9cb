# teardown: one Makefile for the preloaded library, the command, the
# examples and the tests.  `make V=1` shows the commands.

# Installed layout (faketime's): the library in a private folder of the
# multiarch lib directory, found by the command (TD_LIBDIR, or relative to
# the command for a tree copied elsewhere).
PREFIX ?= /usr/local
DESTDIR ?=
DEB_HOST_MULTIARCH ?= $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || \
	$(CC) -print-multiarch 2>/dev/null)
MULTIARCH := $(DEB_HOST_MULTIARCH)
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib$(if $(MULTIARCH),/$(MULTIARCH))/teardown
DATADIR ?= $(PREFIX)/share/teardown
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/teardown
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
# LIBDIR as seen from BINDIR (both under PREFIX by default)
LIBDIR_REL ?= ../$(patsubst $(PREFIX)/%,%,$(LIBDIR))

BUILD ?= build
CC ?= cc
OPT ?= -O2
SAN ?=
VERSION := 0.1.0

WARN := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
	-Wformat=2 -Wno-format-nonliteral -Wundef -fno-common
# CPPFLAGS, CFLAGS and LDFLAGS are the builder's (dpkg-buildflags sets
# them in the environment); the project's own flags are kept apart so
# that a CFLAGS given on the command line does not drop them.  The
# builder's CFLAGS come after OPT (their -O wins) and before WARN (our
# warnings stay errors).
CFLAGS ?= -g
TD_CPPFLAGS := -Iinclude -D_GNU_SOURCE -DTD_VERSION=\"$(VERSION)\" -DTD_LIBDIR=\"$(LIBDIR)\" \
	-DTD_LIBDIR_REL=\"$(LIBDIR_REL)\"
# _Exit is a GCC built-in, whose address __typeof__ cannot take: the
# library wraps it (shim/hook/exit.c), so it is an ordinary function here.
# -fno-plt: a call into libc goes through the GOT, which the loader wrote
# (-z now), not through the PLT's text, one more page a forked child
# would fault in.
TD_CFLAGS = -std=gnu11 $(OPT) $(CFLAGS) $(WARN) -fPIC -fvisibility=hidden -fno-builtin-_Exit \
	-fno-plt $(SANFLAGS)

ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDSAN := -fsanitize=address,undefined
# A sanitized preload must not insist on -z defs: the runtime comes from libasan.
SHIM_DEFS :=
else ifeq ($(SAN),thread)
# ThreadSanitizer (clang): the runtime is linked into each test program,
# and the preloaded library's __tsan_* calls resolve to it.
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
LDSAN := -fsanitize=thread
SHIM_DEFS :=
else
SANFLAGS :=
LDSAN :=
SHIM_DEFS := -Wl,-z,defs
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Pure logic: links without interposition (policy, config, formatting).
CORE_SRC := $(wildcard shim/core/*.c)
# The interposed calls, one file per call, and the runtime they share.
HOOK_SRC := $(wildcard shim/hook/*.c)
RT_SRC := $(wildcard shim/rt/*.c)
CLI_SRC := $(wildcard cli/*.c)
# Pure code only the command needs (log reports, ELF inspection); unit tested.
TOOL_SRC := $(wildcard cli/lib/*.c)
UNIT_SRC := $(wildcard tests/unit/*.c)
# Runtime modules the unit tests link in alone (their few thread-local
# variables, and the raw system call, defined by the test).
UNIT_RT_SRC := shim/rt/fdtab.c
EXAMPLE_SRC := $(wildcard examples/*.c)
# Test-only programs and preloadable test doubles (tests/progs/lib*.c).
TESTLIB_SRC := $(wildcard tests/progs/lib*.c)
TESTPROG_SRC := $(filter-out $(TESTLIB_SRC),$(wildcard tests/progs/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
CORE_OBJ := $(call obj,$(CORE_SRC))
SHIM_OBJ := $(call obj,$(HOOK_SRC) $(RT_SRC))
# The library's objects in link order: what runs once (start-up, reading
# and reloading the policy) and what only sets a socket up (socket, bind,
# connect, accept: a fork-per-connection server's parent) go last.  A
# forked child faults in the text it runs 64 KiB at a time (see $(LIB)):
# kept together, the closing, logging and fork paths take two of those
# windows instead of three.
LIB_LATE_SRC := shim/core/config.c shim/core/cfgread.c shim/core/config_text.c \
	shim/core/schema.c shim/core/policy.c shim/core/fault.c shim/rt/reload.c \
	shim/core/mem.c shim/rt/mem.c \
	shim/rt/runwide.c shim/rt/faults.c shim/hook/spawn.c shim/hook/vfork.c \
	shim/hook/close_range.c shim/hook/syscall.c shim/hook/fclose.c shim/hook/setsockopt.c \
	shim/hook/bind.c shim/hook/socket.c shim/hook/connect.c shim/hook/accept.c
LIB_OBJ := $(filter-out $(call obj,$(LIB_LATE_SRC)),$(CORE_OBJ) $(SHIM_OBJ)) \
	$(call obj,$(LIB_LATE_SRC))
CLI_OBJ := $(call obj,$(CLI_SRC))
TOOL_OBJ := $(call obj,$(TOOL_SRC))
UNIT_OBJ := $(call obj,$(UNIT_SRC) $(UNIT_RT_SRC))
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))
TESTPROGS := $(patsubst tests/progs/%.c,$(BUILD)/tests/progs/%,$(TESTPROG_SRC)) \
	$(patsubst tests/progs/%.c,$(BUILD)/tests/progs/%.so,$(TESTLIB_SRC))

# The manual pages and the bash completion, made by the built command
# from its own tables (scripts/genman.sh, teardown help completion).
MANPAGES := $(BUILD)/man/teardown.1 $(BUILD)/man/teardown.conf.5
COMPLETION := $(BUILD)/completion/teardown

LIB := $(BUILD)/libteardown.so
CORE_LIB := $(BUILD)/libtdcore.a
TOOL_LIB := $(BUILD)/libtdtool.a
CLI := $(BUILD)/teardown
UNIT := $(BUILD)/tests/unit_tests


.PHONY: all testprogs test unit e2e demo sanitize tsan bench fuzz install uninstall clean deps-build deps-test deps-demo deps-bench deps-deb check-abi deb deb-check examples

all: $(LIB) $(CLI) $(EXAMPLES) $(MANPAGES) $(COMPLETION)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(TD_CPPFLAGS) $(CPPFLAGS) $(TD_CFLAGS) -MMD -MP -c -o $@ $<

# The version script: the names listed in shim/rt/calls.h, and no others.
$(BUILD)/teardown.map: shim/teardown.map.in shim/rt/calls.h
	@mkdir -p $(dir $@)
	$(Q)$(CC) -E -P -x c -Ishim -o $@ shim/teardown.map.in

# max-page-size=4K on x86 (whose pages are 4 KiB, always): the segments
# follow each other with no gap, one mapping each (a gap is a PROT_NONE
# mapping more, and every mapping is work in each fork() and exit()).
# Elsewhere the linker's default stays: a kernel with 16 or 64 KiB pages
# must be able to map the library.  A forked child faults in a file's
# pages 64 KiB at a time (the kernel's fault-around window, aligned in
# memory): shim/td_child.ld puts the text a child runs in one window,
# whose 64 KiB alignment makes glibc (2.35+) map the library there, and
# starts .rodata on the next one.
comma := ,
LIB_PAGE := $(if $(filter x86_64-% i386-% i486-% i586-% i686-%,$(shell $(CC) -dumpmachine)),\
	-Wl$(comma)-z$(comma)max-page-size=0x1000)
$(LIB): $(LIB_OBJ) $(BUILD)/teardown.map shim/td_child.ld
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -shared -o $@ $(LIB_OBJ) $(LDSAN) \
		-Wl,--version-script=$(BUILD)/teardown.map $(SHIM_DEFS) -Wl,-z,now \
		-Wl,-T,shim/td_child.ld $(LIB_PAGE) \
		-Wl,--as-needed -Wl,-soname,libteardown.so

$(CORE_LIB): $(CORE_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(TOOL_LIB): $(TOOL_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(CLI): $(CLI_OBJ) $(TOOL_LIB) $(CORE_LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(TOOL_LIB) $(CORE_LIB) $(LDSAN)

# What has the install paths in it (the command's library lookup, the
# manual pages) is rebuilt when they change: make, then make install
# PREFIX=/usr, gives a command and pages that name /usr.
PATHS_STAMP := $(BUILD)/paths.stamp
PATHS := $(LIBDIR) $(LIBDIR_REL) $(DATADIR) $(VERSION)
$(shell mkdir -p $(BUILD) && echo '$(PATHS)' | cmp -s - $(PATHS_STAMP) 2>/dev/null || \
	echo '$(PATHS)' >$(PATHS_STAMP))
$(BUILD)/obj/cli/run.o $(MANPAGES): $(PATHS_STAMP)

$(BUILD)/man/%: man/%.in $(CLI) scripts/genman.sh
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  MAN     $@")
	$(Q)scripts/genman.sh $(CLI) $< $@ $(VERSION) $(LIBDIR) $(DATADIR)

$(COMPLETION): $(CLI)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GEN     $@")
	$(Q)$(CLI) help completion >$@.tmp && mv $@.tmp $@

$(UNIT): $(UNIT_OBJ) $(TOOL_LIB) $(CORE_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(UNIT_OBJ) $(TOOL_LIB) $(CORE_LIB) $(LDSAN) -lcriterion -lconfig -lm

$(BUILD)/examples/%: examples/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(TD_CPPFLAGS) $(CPPFLAGS) $(filter-out -fvisibility=hidden,$(TD_CFLAGS)) $(LDFLAGS) -o $@ $< $(LDSAN) -lpthread

# Programs that export their own definitions of names the library uses.
$(BUILD)/tests/progs/exports_%: PROG_LDFLAGS := -rdynamic

$(BUILD)/tests/progs/%: tests/progs/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(TD_CPPFLAGS) $(CPPFLAGS) $(filter-out -fvisibility=hidden,$(TD_CFLAGS)) $(LDFLAGS) -o $@ $< $(LDSAN) $(PROG_LDFLAGS) -lpthread

# The spool's writers alone, its ring code linked in (tests/bench/threads.py).
$(BUILD)/tests/progs/bench_spool: $(CORE_LIB)
$(BUILD)/tests/progs/bench_spool: PROG_LDFLAGS := $(CORE_LIB)

# Exports its own config_init/config_read to the dynamic symbol table, as
# lighttpd does (the compat suite's regression test for libconfig binding).
$(BUILD)/tests/progs/host_appsyms: PROG_LDFLAGS := -rdynamic

$(BUILD)/tests/progs/%.so: tests/progs/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(TD_CPPFLAGS) $(CPPFLAGS) $(filter-out -fvisibility=hidden,$(TD_CFLAGS)) $(LDFLAGS) -shared -o $@ $< $(LDSAN) -lpthread

testprogs: $(TESTPROGS)

# --- dependencies --------------------------------------------------------
# Each installs what is missing when run as root, else names the apt-get line.
deps-build:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh test
deps-demo:
	@scripts/deps.sh demo
deps-bench:
	@scripts/deps.sh bench
deps-deb:
	@scripts/deps.sh deb

# --- tests ---------------------------------------------------------------
test: deps-test
	$(Q)$(MAKE) --no-print-directory all $(UNIT) testprogs
	$(Q)$(MAKE) --no-print-directory unit e2e

unit: $(UNIT)
	$(Q)$(UNIT) --jobs 2 --timeout 60

e2e: all testprogs
	$(Q)TD_BUILD=$(BUILD) python3 tests/e2e/run.py $(E2E_ARGS)

# The same tests against a build under AddressSanitizer and UBSan.
sanitize: deps-test
	$(Q)$(MAKE) --no-print-directory BUILD=build/san SAN=1 OPT=-O1 all testprogs build/san/tests/unit_tests
	$(Q)ASAN_OPTIONS=detect_leaks=1 build/san/tests/unit_tests --jobs 2 --timeout 120
	$(Q)TD_BUILD=build/san TD_SANITIZE=1 python3 tests/e2e/run.py $(E2E_ARGS)

# The library and the threaded host tests under ThreadSanitizer (clang):
# any report fails (tests/e2e/tsan_*.py).
TSAN_PROGS := thread_mix host_race host_stress
tsan: deps-test
	$(Q)$(MAKE) --no-print-directory BUILD=build/tsan SAN=thread CC=clang OPT=-O1 \
		build/tsan/libteardown.so $(addprefix build/tsan/tests/progs/,$(TSAN_PROGS))
	$(Q)TD_BUILD=build/tsan TD_TSAN=1 TD_E2E_SUITE=tsan python3 tests/e2e/run.py $(E2E_ARGS)

demo: deps-demo all
	$(Q)TD_BUILD=$(BUILD) python3 examples/demo.py

# The worked examples (examples/*/), each in its own network namespace,
# checked against its .expected lines.  EXAMPLES_ARGS=timewait runs one.
examples: deps-demo all
	$(Q)TD_BUILD=$(abspath $(BUILD)) examples/check.sh $(EXAMPLES_ARGS)

# One table of every figure (tests/bench/run.py); BENCH=NAME runs one part
# (calls, loop, servers, rules, threads, fds, fault_cost).
bench: deps-bench all testprogs
	$(Q)TD_BUILD=$(BUILD) python3 tests/bench/run.py $(BENCH)

fuzz: deps-test
	$(Q)tests/fuzz/run.sh $(FUZZ_RUNS)

# The exported-names and NEEDED checks of the end-to-end suite, alone.
check-abi: $(LIB)
	$(Q)TD_BUILD=$(BUILD) python3 tests/e2e/run.py test_exported_symbols_are_exactly_the_wrapped_calls test_only_libc_is_needed

# --- install -------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=staging]; make uninstall with
# the same variables removes exactly these files, and the folders that
# are teardown's own.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(DATADIR)/logrotate.d \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(DOCDIR)
	install -m 0755 $(CLI) $(DESTDIR)$(BINDIR)/teardown
	install -m 0644 $(LIB) $(DESTDIR)$(LIBDIR)/libteardown.so
	install -m 0644 config/*.conf $(DESTDIR)$(DATADIR)/
	install -m 0644 config/logrotate.d/teardown $(DESTDIR)$(DATADIR)/logrotate.d/teardown
	install -m 0644 $(BUILD)/man/teardown.1 $(DESTDIR)$(MANDIR)/man1/teardown.1
	install -m 0644 $(BUILD)/man/teardown.conf.5 $(DESTDIR)$(MANDIR)/man5/teardown.conf.5
	install -m 0644 $(COMPLETION) $(DESTDIR)$(BASHCOMPDIR)/teardown
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/teardown $(DESTDIR)$(LIBDIR)/libteardown.so \
		$(addprefix $(DESTDIR)$(DATADIR)/,$(notdir $(wildcard config/*.conf))) \
		$(DESTDIR)$(DATADIR)/logrotate.d/teardown \
		$(DESTDIR)$(MANDIR)/man1/teardown.1 $(DESTDIR)$(MANDIR)/man5/teardown.conf.5 \
		$(DESTDIR)$(BASHCOMPDIR)/teardown $(DESTDIR)$(DOCDIR)/README.md
	rmdir --ignore-fail-on-non-empty $(DESTDIR)$(LIBDIR) $(DESTDIR)$(DATADIR)/logrotate.d \
		$(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR) 2>/dev/null || true

# --- Debian package --------------------------------------------------------
# make deb: the tree (without build/ and .git) copied to $(DEB_DIR), built
# there with dpkg-buildpackage (debian/, debhelper compat 13), then
# checked by lintian, which fails on any error.  The .deb (and its
# -dbgsym) land in $(DEB_DIR).  scripts/deb-check.sh installs, uses and
# removes it (CI).
DEB_DIR ?= $(BUILD)/deb
deb: deps-deb
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/teardown-$(VERSION)
	tar -cf - --exclude=./build --exclude=./.git --exclude=__pycache__ --exclude='*.pcap' . | \
		tar -xf - -C $(DEB_DIR)/teardown-$(VERSION)
	cd $(DEB_DIR)/teardown-$(VERSION) && dpkg-buildpackage -us -uc -b
	lintian --fail-on error --info $(DEB_DIR)/teardown_$(VERSION)_*.changes

deb-check: deb
	$(Q)scripts/deb-check.sh $(DEB_DIR)/teardown_$(VERSION)_*.deb

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
