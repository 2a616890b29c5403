/* fqlm_ref_tokenize.c - fqlm's side of tools/tok_diff.py: the same record protocol as
 * tools/llama_ref_tokenize.cpp (stdin "<u32 length><bytes>" records; one line of ids per
 * record, no BOS, no special parsing, or with both given a second argument "special"; "ERR <n>"
 * on failure), through the public API.
 *   cc -O2 -Iinclude tools/fqlm_ref_tokenize.c build/libfqlm.a -lm -lpthread -o /tmp/fqlm_ref_tokenize */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fqlm.h"

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: fqlm_ref_tokenize VOCAB.gguf [special] < records\n");
        return 2;
    }
    const int special = argc == 3;
    fqlm_vocab *v = fqlm_vocab_load(argv[1]);
    if (!v) {
        fprintf(stderr, "%s\n", fqlm_last_error());
        return 1;
    }
    uint32_t len;
    while (fread(&len, 4, 1, stdin) == 1) {
        char *text = malloc((size_t)len + 1);
        int32_t *ids = malloc(((size_t)len + 16) * sizeof *ids);
        if (!text || !ids || (len && fread(text, 1, len, stdin) != len)) {
            fprintf(stderr, "short record or out of memory\n");
            return 1;
        }
        int n = fqlm_vocab_tokenize(v, text, len, ids, (int)len + 16, special, special);
        if (n < 0) printf("ERR %d\n", n);
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        if (n >= 0) printf("\n");
        free(text);
        free(ids);
    }
    fqlm_vocab_free(v);
    return 0;
}
