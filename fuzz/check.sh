#!/usr/bin/env bash
# Checks that $1 (default clang) can build libFuzzer targets with ASan and UBSan; otherwise
# says which Debian package is missing and exits 1. Installs nothing.
set -u
cc=${1:-clang}
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz: '$cc' not found: install Debian's clang (apt-get install clang) or pass FUZZ_CC=..." >&2
    exit 1
fi
if ! "$cc" --version 2>/dev/null | grep -qi clang; then
    echo "fuzz: '$cc' is not clang: libFuzzer needs clang (apt-get install clang, then FUZZ_CC=clang)" >&2
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' >"$tmp/t.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined "$tmp/t.c" -o "$tmp/t" >"$tmp/log" 2>&1; then
    major=$("$cc" -dumpversion 2>/dev/null | cut -d. -f1)
    echo "fuzz: '$cc' cannot link -fsanitize=fuzzer,address,undefined (the libFuzzer runtime" >&2
    echo "      is missing): install Debian's libclang-rt-${major:-XX}-dev (clang $major; newer" >&2
    echo "      releases also have libclang-rt-dev), e.g. apt-get install libclang-rt-${major:-XX}-dev" >&2
    sed 's/^/      /' "$tmp/log" | head -5 >&2
    exit 1
fi
exit 0
