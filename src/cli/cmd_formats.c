/* cmd_formats.c - `fqlm formats [--json] [SPEC...]`: the table of number formats fake
 * quantization can emulate (bits per element with scale overhead, range, block and scale,
 * what Inf and NaN become, rounding), then the rules and options in words. With SPECs,
 * only those (options included: `fqlm formats e3m4:fn,subnormal=off`). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "formats.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm formats [--json] [SPEC...]\n"
            "\n"
            "Lists the number formats fake quantization can emulate, or describes the given\n"
            "format specs. Values of block and integer formats are those of the element grid,\n"
            "before scaling.\n"
            "\n"
            "  --json   print the table as a JSON array\n"
            "  --help   show this help and the rules of every format\n");
}

/* A value for the table: "-" when not applicable, powers of two as 2^k when that is
 * shorter, others with enough digits to be exact for these formats. */
static void fmt_val(char *buf, size_t n, double v) {
    if (isnan(v)) {
        snprintf(buf, n, "-");
        return;
    }
    int e;
    double m = frexp(v, &e);
    if (m == 0.5 && (e - 1 < -4 || e - 1 > 16)) {
        snprintf(buf, n, "2^%d", e - 1);
        return;
    }
    snprintf(buf, n, "%.7g", v);
}

/* The name column: 12 wide, or as wide as a long spec needs. */
static int namew(const char *s) { return strlen(s) > 12 ? (int)strlen(s) : 12; }

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", (unsigned char)*s);
        else putchar(*s);
    }
    putchar('"');
}

static void json_num(double v) {
    if (isnan(v)) printf("null");
    else printf("%.17g", v);
}

static void print_json_row(const char *spec, const fq_format_desc *d, const char *unavailable,
                           int first) {
    printf("%s\n  {\"format\": ", first ? "" : ",");
    json_str(spec);
    if (unavailable) {
        printf(", \"available\": false, \"error\": ");
        json_str(unavailable);
        printf("}");
        return;
    }
    printf(", \"available\": true, \"family\": ");
    json_str(d->family);
    printf(", \"bits_per_element\": ");
    json_num(d->bits);
    printf(", \"max_finite\": ");
    json_num(d->max_finite);
    printf(", \"min_normal\": ");
    json_num(d->min_normal);
    printf(", \"min_subnormal\": ");
    json_num(d->min_subnormal);
    printf(", \"block\": %d, \"scale\": ", d->block);
    json_str(d->scale);
    printf(", \"inf_nan\": ");
    json_str(d->specials);
    printf(", \"rounding\": ");
    json_str(d->rounding);
    printf("}");
}

static void print_text_row(const char *spec, const fq_format_desc *d, const char *unavailable) {
    if (unavailable) {
        printf("%-12s (not available: %s)\n", spec, unavailable);
        return;
    }
    char mx[32], mn[32], ms[32], bits[16], blk[16];
    fmt_val(mx, sizeof mx, d->max_finite);
    fmt_val(mn, sizeof mn, d->min_normal);
    fmt_val(ms, sizeof ms, d->min_subnormal);
    snprintf(bits, sizeof bits, "%.4g", d->bits);
    if (d->block > 0) snprintf(blk, sizeof blk, "%d", d->block);
    else snprintf(blk, sizeof blk, "%s", d->block == -1 ? "tensor" : d->block == -2 ? "row"
                                        : d->block == -3 ? "col" : "-");
    printf("%-*s %6s %12s %8s %8s %6s  %-30s %-30s %s\n", namew(spec), spec, bits, mx, mn, ms,
           blk, d->scale, d->specials, d->rounding);
}

int cmd_formats(int argc, char **argv) {
    int json = 0, nspecs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            printf("\n%s", fq_format_help());
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("formats: unknown option '%s'", argv[i]);
            usage(stderr);
            return 2;
        } else {
            nspecs++;
        }
    }
    /* given specs must parse: a typo is a usage error, not a row */
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) continue;
        fq_format *f;
        fq_err e;
        if (fq_format_parse(argv[i], &f, &e)) {
            cli_error("%s", e.msg);
            return 2;
        }
        fq_format_free(f);
    }
    if (json) printf("[");
    else
        printf("%-12s %6s %12s %8s %8s %6s  %-30s %-30s %s\n", "format", "bits", "max finite",
               "min norm", "min sub", "block", "scale", "Inf / NaN (NaN stays NaN)", "rounding");
    int first = 1;
    for (int i = 0;; i++) {
        const char *spec;
        if (nspecs) {
            if (i + 1 >= argc) break;
            spec = argv[i + 1];
            if (spec[0] == '-' && spec[1]) continue;
        } else if (!(spec = fq_format_list(i))) {
            break;
        }
        fq_format *f = NULL;
        fq_err e = {{0}};
        fq_format_desc d;
        const char *unavailable = NULL;
        if (fq_format_parse(spec, &f, &e)) unavailable = e.msg;
        else fq_format_describe(f, &d);
        const char *name = f ? fq_format_str(f) : spec;
        if (json) print_json_row(name, &d, unavailable, first);
        else print_text_row(name, &d, unavailable);
        first = 0;
        fq_format_free(f);
    }
    if (json) {
        printf("\n]\n");
    } else {
        if (!nspecs)
            printf("%-12s %6s %12s %8s %8s %6s  %-30s %-30s %s\n", "eXmY", "1+X+Y", "by X,Y",
                   "2^(2-B)", "", "-", "none, B = 2^(X-1)", "ieee (default), fn, finite", "rne");
        printf("\nbits include per-block scales (not per-tensor, per-row or per-column ones);\n"
               "block and integer formats show their element grid before scaling.\n"
               "`fqlm formats --help` explains every rule and option.\n");
    }
    return 0;
}
