# fqlm - build with `make`; `make test` builds and runs every test.
#
# Layout: src/*.c and src/arch/x86/*.c form libfqlm.a; src/cli/*.c the fqlm program;
# tests/test_*.c one test program each. New files are picked up by the wildcards.
# ISA variants: src/arch/x86/*_avx2.c and *_avx512.c are compiled with their own flags
# and chosen at run time from CPUID, so the binary runs on any x86-64.
# SAN=1 builds everything with AddressSanitizer and UBSan into build-san/.

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
else
BUILD   ?= build
endif

AVX2FLAGS   = -mavx2 -mfma -mf16c
AVX512FLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mfma -mf16c -mavx2

LIB_SRC  = $(wildcard src/*.c src/arch/x86/*.c)
CLI_SRC  = $(wildcard src/cli/*.c)
TEST_SRC = $(wildcard tests/test_*.c)

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

LIB = $(BUILD)/libfqlm.a
BIN = fqlm

.PHONY: all test clean bench
all: $(BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/src/arch/x86/%_avx2.o: src/arch/x86/%_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) $(AVX2FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/src/arch/x86/%_avx512.o: src/arch/x86/%_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) $(AVX512FLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fqlm: $(CLI_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) $(CLI_OBJ) $(LIB) $(LDLIBS) -o $@

ifeq ($(SAN),1)
$(BIN): $(BUILD)/fqlm
else
$(BIN): $(BUILD)/fqlm
	cp $< $@
endif

$(BUILD)/tests/%: tests/%.c $(LIB) tests/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) $(LDFLAGS) -Itests $< $(LIB) $(LDLIBS) -o $@

test: $(TEST_BIN) $(BUILD)/fqlm
	FQLM_BIN=$(BUILD)/fqlm tests/run.sh $(BUILD)

clean:
	rm -rf build build-san $(BIN)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
