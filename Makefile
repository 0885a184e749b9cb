# teardown: one Makefile for the preloaded library, the command, the
# examples and the tests.  `make V=1` shows the commands.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib/teardown
SYSCONFDIR ?= /etc
DOCDIR ?= $(PREFIX)/share/doc/teardown

BUILD ?= build
CC ?= cc
OPT ?= -O2
SAN ?=
VERSION := 0.1.0

WARN := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
	-Wformat=2 -Wno-format-nonliteral -Wundef -fno-common
CPPFLAGS += -Iinclude -D_GNU_SOURCE -DTD_VERSION=\"$(VERSION)\" -DTD_LIBDIR=\"$(LIBDIR)\"
CFLAGS ?= -g
CFLAGS += -std=gnu11 $(OPT) $(WARN) -fPIC -fvisibility=hidden
# _Exit is a GCC built-in, whose address __typeof__ cannot take: the
# library wraps it (shim/hook/exit.c), so it is an ordinary function here.
CFLAGS += -fno-builtin-_Exit

ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDSAN := -fsanitize=address,undefined
# A sanitized preload must not insist on -z defs: the runtime comes from libasan.
SHIM_DEFS :=
else
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
EXAMPLE_SRC := $(wildcard examples/*.c)
# Test-only programs and preloadable test doubles (tests/progs/lib*.c).
TESTLIB_SRC := $(wildcard tests/progs/lib*.c)
TESTPROG_SRC := $(filter-out $(TESTLIB_SRC),$(wildcard tests/progs/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
CORE_OBJ := $(call obj,$(CORE_SRC))
SHIM_OBJ := $(call obj,$(HOOK_SRC) $(RT_SRC))
CLI_OBJ := $(call obj,$(CLI_SRC))
TOOL_OBJ := $(call obj,$(TOOL_SRC))
UNIT_OBJ := $(call obj,$(UNIT_SRC))
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))
TESTPROGS := $(patsubst tests/progs/%.c,$(BUILD)/tests/progs/%,$(TESTPROG_SRC)) \
	$(patsubst tests/progs/%.c,$(BUILD)/tests/progs/%.so,$(TESTLIB_SRC))

LIB := $(BUILD)/libteardown.so
CORE_LIB := $(BUILD)/libtdcore.a
TOOL_LIB := $(BUILD)/libtdtool.a
CLI := $(BUILD)/teardown
UNIT := $(BUILD)/tests/unit_tests


.PHONY: all testprogs test unit e2e demo sanitize bench fuzz install uninstall clean deps-build deps-test deps-demo deps-bench check-abi

all: $(LIB) $(CLI) $(EXAMPLES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# The version script: the names listed in shim/rt/calls.h, and no others.
$(BUILD)/teardown.map: shim/teardown.map.in shim/rt/calls.h
	@mkdir -p $(dir $@)
	$(Q)$(CC) -E -P -x c -Ishim -o $@ shim/teardown.map.in

$(LIB): $(CORE_OBJ) $(SHIM_OBJ) $(BUILD)/teardown.map
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -o $@ $(CORE_OBJ) $(SHIM_OBJ) $(LDSAN) \
		-Wl,--version-script=$(BUILD)/teardown.map $(SHIM_DEFS) -Wl,-z,now \
		-Wl,--as-needed -Wl,-soname,libteardown.so

$(CORE_LIB): $(CORE_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(TOOL_LIB): $(TOOL_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(CLI): $(CLI_OBJ) $(TOOL_LIB) $(CORE_LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $(CLI_OBJ) $(TOOL_LIB) $(CORE_LIB) $(LDSAN)

$(UNIT): $(UNIT_OBJ) $(TOOL_LIB) $(CORE_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $(UNIT_OBJ) $(TOOL_LIB) $(CORE_LIB) $(LDSAN) -lcriterion -lconfig -lm

$(BUILD)/examples/%: examples/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(filter-out -fvisibility=hidden,$(CFLAGS)) -o $@ $< $(LDSAN) -lpthread

# Programs that export their own definitions of names the library uses.
$(BUILD)/tests/progs/exports_%: PROG_LDFLAGS := -rdynamic

$(BUILD)/tests/progs/%: tests/progs/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(filter-out -fvisibility=hidden,$(CFLAGS)) -o $@ $< $(LDSAN) $(PROG_LDFLAGS) -lpthread

# Exports its own config_init/config_read to the dynamic symbol table, as
# lighttpd does (the compat suite's regression test for libconfig binding).
$(BUILD)/tests/progs/host_appsyms: PROG_LDFLAGS := -rdynamic

$(BUILD)/tests/progs/%.so: tests/progs/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(filter-out -fvisibility=hidden,$(CFLAGS)) -shared -o $@ $< $(LDSAN) -lpthread

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

demo: deps-demo all
	$(Q)TD_BUILD=$(BUILD) python3 examples/demo.py

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
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(DOCDIR)/examples
	install -m 0755 $(CLI) $(DESTDIR)$(BINDIR)/teardown
	install -m 0644 $(LIB) $(DESTDIR)$(LIBDIR)/libteardown.so
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 0644 config/*.conf $(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 config/logrotate.d/teardown $(DESTDIR)$(DOCDIR)/examples/logrotate.teardown

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/teardown $(DESTDIR)$(LIBDIR)/libteardown.so
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
