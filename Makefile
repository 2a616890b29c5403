# fqlm - build with `make`; `make test` builds and runs every test.
#
# Layout: src/*.c, src/backend/cpu/*.c and src/arch/x86/*.c form libfqlm.a; src/cli/*.c the fqlm program;
# tests/test_*.c one test program each. New files are picked up by the wildcards.
# ISA variants: src/arch/x86/*_avx2.c and *_avx512.c are compiled with their own flags
# and chosen at run time from CPUID, so the binary runs on any x86-64.
# SAN=1 builds everything with AddressSanitizer and UBSan into build-san/.
# MPI=1 builds with mpicc into build-mpi/ (Debian: libopenmpi-dev openmpi-bin): its
# build-mpi/fqlm runs `mpirun -n N fqlm sweep ...` over N ranks; the plain build needs no MPI.
# `make fuzz` builds the libFuzzer targets fuzz/fuzz_*.c with clang into build-fuzz/;
# `make fuzz-run [FUZZ_SECONDS=60]` runs each on a copy of its seed corpus fuzz/corpus/*.

CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN    = -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes
BASEFLAGS = -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -pthread -fno-math-errno $(WARN)
LDLIBS  = -lm -pthread

ifeq ($(SAN),1)
BUILD   ?= build-san
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
else ifeq ($(MPI),1)
BUILD   ?= build-mpi
CC      = mpicc
CFLAGS  += -DFQ_MPI
else
BUILD   ?= build
endif

AVX2FLAGS   = -mavx2 -mfma -mf16c
AVX512FLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mfma -mf16c -mavx2

LIB_SRC  = $(wildcard src/*.c src/arch/x86/*.c src/backend/*.c src/backend/cpu/*.c)
CLI_SRC  = $(wildcard src/cli/*.c)
TEST_SRC = $(wildcard tests/test_*.c)

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

LIB = $(BUILD)/libfqlm.a
BIN = fqlm

# The shared library for the Python package (python/fqlm): the same sources compiled with
# -fPIC into $(BUILD)/pic/, so the static library and the fqlm program stay as they were.
PIC_OBJ = $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
SO      = $(BUILD)/libfqlm.so
# The python suite as a test program of tests/run.sh (skips itself without numpy); not in
# the sanitizer build (an ASan library cannot be loaded into an uninstrumented python3).
ifneq ($(SAN),1)
PY_TEST = $(BUILD)/tests/test_python
endif

.PHONY: all test tools clean bench fuzz fuzz-check fuzz-bins fuzz-run fuzz-seeds python
all: $(BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/src/arch/x86/%_avx2.o: src/arch/x86/%_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) $(AVX2FLAGS) $(KERNEL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/src/arch/x86/%_avx512.o: src/arch/x86/%_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) $(AVX512FLAGS) $(KERNEL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) -fPIC -MMD -MP -c $< -o $@

$(BUILD)/pic/src/arch/x86/%_avx2.o: src/arch/x86/%_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) -fPIC $(AVX2FLAGS) $(KERNEL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/pic/src/arch/x86/%_avx512.o: src/arch/x86/%_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) -fPIC $(AVX512FLAGS) $(KERNEL_CFLAGS) -MMD -MP -c $< -o $@

$(SO): $(PIC_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,libfqlm.so $^ $(LDLIBS) -o $@

python: $(SO)

$(BUILD)/tests/test_python: tests/test_python.sh $(SO)
	@mkdir -p $(dir $@)
	cp tests/test_python.sh $@
	chmod +x $@

# tools/bench-types.sh's own test (skips itself without python3)
$(BUILD)/tests/test_bench_types: tests/test_bench_types.sh
	@mkdir -p $(dir $@)
	cp tests/test_bench_types.sh $@
	chmod +x $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fqlm: $(CLI_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) $(CLI_OBJ) $(LIB) $(LDLIBS) -o $@

ifneq ($(SAN)$(MPI),)
$(BIN): $(BUILD)/fqlm
else
$(BIN): $(BUILD)/fqlm
	cp $< $@
endif

$(BUILD)/tests/%: tests/%.c $(LIB) tests/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) $(LDFLAGS) -Itests $< $(LIB) $(LDLIBS) -o $@

# the measuring programs in tools/ (each says how to run it): built with the tests so that
# they keep compiling
TOOLS_BIN = $(BUILD)/tools/tile_bounds $(BUILD)/tools/decode_pattern
$(BUILD)/tools/%: tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) -O2 $(AVX2FLAGS) $< -o $@
tools: $(TOOLS_BIN)

test: $(TEST_BIN) $(BUILD)/fqlm $(PY_TEST) $(BUILD)/tests/test_bench_types $(TOOLS_BIN)
	FQLM_BIN=$(BUILD)/fqlm FQLM_LIB=$(BUILD)/libfqlm.so tests/run.sh $(BUILD)

# ---- fuzzing: clang + libFuzzer (Debian: clang, libclang-rt-<version>-dev) -----------
# The library is rebuilt with clang into build-fuzz/ (coverage-instrumented, ASan+UBSan);
# fuzz/check.sh says which package is missing instead of installing anything.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD   = build-fuzz
FUZZ_SAN     = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# clang's UBSan takes minutes on the unrolled SIMD tile kernels (src/arch/x86): the fuzz
# build keeps ASan there and leaves UBSan to `make test SAN=1` (gcc), which covers them.
FUZZ_KERNEL_CFLAGS = -fno-sanitize=undefined
FUZZ_TARGETS = $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))

fuzz-check:
	@fuzz/check.sh $(FUZZ_CC)

fuzz: fuzz-check
	@$(MAKE) --no-print-directory fuzz-bins BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) SAN= \
		CFLAGS="-O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link" LDFLAGS= \
		KERNEL_CFLAGS="$(FUZZ_KERNEL_CFLAGS)"

fuzz-bins: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)

$(BUILD)/fuzz/%: fuzz/%.c fuzz/fuzz_common.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) -fsanitize=fuzzer $< $(LIB) $(LDLIBS) -o $@

fuzz-run: fuzz
	fuzz/run.sh $(FUZZ_BUILD)/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Regenerates the seed corpora (committed) from the bundled models.
fuzz-seeds: $(LIB)
	@mkdir -p $(BUILD)/fuzz
	$(CC) $(BASEFLAGS) $(CFLAGS) fuzz/mkseeds.c $(LIB) $(LDLIBS) -o $(BUILD)/fuzz/mkseeds
	$(BUILD)/fuzz/mkseeds

clean:
	rm -rf build build-san build-mpi build-fuzz $(BIN)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(PIC_OBJ:.o=.d)
