// llama_ref_tokenize.cpp - reference token ids from llama.cpp's own tokenizer, for many texts
// in one process (tools/gen_pre_cases.py). Reads from stdin records "<u32 length><bytes>" and
// writes one line per record: the ids of llama_tokenize(add_special=false, parse_special=false)
// as "1 2 3", or "ERR <n>" when llama_tokenize fails. A second argument "special" sets both
// add_special and parse_special.
// Build against a llama.cpp build tree L (e.g. /work/ext/llama.cpp):
//   g++ -O2 -std=c++17 -I L/include -I L/ggml/include tools/llama_ref_tokenize.cpp \
//       -L L/build/bin -lllama -lggml -lggml-base -Wl,-rpath,L/build/bin -o /tmp/llama_ref_tokenize
#include <cstdint>
#include <cstdio>
#include <vector>

#include "llama.h"

static void quiet(enum ggml_log_level, const char *, void *) {}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: llama_ref_tokenize VOCAB.gguf [special] < records\n");
        return 2;
    }
    const bool special = argc == 3;
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    std::vector<char> text;
    std::vector<llama_token> ids;
    uint32_t len;
    while (fread(&len, 4, 1, stdin) == 1) {
        text.resize(len + 1);
        if (len && fread(text.data(), 1, len, stdin) != len) {
            fprintf(stderr, "short record\n");
            return 1;
        }
        ids.resize(len + 16); // a token holds at least one byte; BOS and EOS added
        int32_t n = llama_tokenize(vocab, text.data(), (int32_t)len, ids.data(), (int32_t)ids.size(), special, special);
        if (n < 0) {
            printf("ERR %d\n", n);
            continue;
        }
        for (int32_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    llama_model_free(model);
    return 0;
}
