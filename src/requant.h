/* requant.h - real ggml weight types per tensor: the types a weight can be re-encoded to,
 * their cost in bits, and re-encoding a loaded model's named weights in memory (the
 * in-memory twin of `fqlm quantize --plan`: same decoders, same encoders, same bytes). */
#ifndef FQ_REQUANT_H
#define FQ_REQUANT_H

#include "common.h"
#include "model.h"

/* The types a weight can be written in (those with an encoder and kernels llama.cpp also
 * uses for weights), most bits first: f32 f16 bf16 q8_0 q6_k q5_1 q5_0 q5_k q4_1 q4_0 q4_k
 * q3_k q2_k. Fills
 * *type from a name (case-insensitive, "q4_k" or "Q4_K"). Returns 0, or -1 with e set,
 * listing the names. */
int fq_wtype_find(const char *name, uint32_t *type, fq_err *e);
/* The i-th weight type's id (i from 0), or FQ_TYPE_COUNT past the end. */
uint32_t fq_wtype_at(int i);
/* The lower-case name of a weight type ("q4_k"), as plans and llama-quantize's
 * --tensor-type write it. */
const char *fq_wtype_lname(uint32_t type);
/* Bits per weight with block scales counted: 8 * block bytes / block elements. */
double fq_wtype_bpw(uint32_t type);
/* 1 when rows of row_len elements are whole blocks of type, else 0. */
int fq_wtype_fits(uint32_t type, int64_t row_len);
/* When rows of row_len are not whole blocks of type: a message tail naming the types
 * that fit and llama-quantize's fallback ("; llama-quantize would write Q5_0; types that
 * fit: ..."). Writes into buf, returns buf. */
const char *fq_wtype_alternatives(uint32_t type, int64_t row_len, char *buf, size_t cap);

/* Re-encodes the weights names[i] of m to types[i] (n pairs), each from the file's stored
 * data (m must not have had weight rules applied: m's weights must still be the mapping)
 * decoded to F32 and encoded with fq_encode_rows, as fq_quantize_file does; a tensor whose
 * type does not change keeps its bytes. Errors (nothing changed then): a name that is not
 * one of the model's weight matrices, a name given twice, rows that are not whole blocks
 * of the type, memory. n_threads >= 1. */
int fq_model_requantize(fq_model *m, const char *const *names, const uint32_t *types, int n,
                        int n_threads, fq_err *e);

/* Reads the weight types of a plan file (JSON: {"assignment": [{"tensor": NAME, "type":
 * TYPE}, ...], ...}; a "weight:" prefix of NAME is dropped): *names (malloc'd array of
 * malloc'd strings) and *types, *n pairs; free with fq_plan_free. Errors name the file and
 * the entry: not JSON, no "assignment" array, an entry that is an activation rule ("node",
 * "layer", "format": those are --fq rules for fqlm compare, not weight types), an entry
 * without "tensor" or "type" strings, an unknown type. */
int fq_plan_read_weights(const char *path, char ***names, uint32_t **types, int *n, fq_err *e);
void fq_plan_free(char **names, uint32_t *types, int n);

#endif
