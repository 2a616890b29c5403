/* select.c - layer and format lists of sweep and plan. */
#include "select.h"

#include "cli.h"
#include "fqlm.h"
#include "sweep.h"

int cli_parse_layers(const char *opt, const char *list, int n_layer, int **layers, int *n) {
    fq_err e;
    if (fq_parse_layer_list(list, n_layer, layers, n, &e)) {
        cli_error("%s: %s", opt, e.msg);
        return -1;
    }
    return 0;
}

int cli_parse_formats(const char *opt, const char *list, char ***out, int *n_out) {
    fq_err e;
    if (fq_parse_format_list(list, out, n_out, &e)) {
        cli_error("%s: %s", opt, e.msg);
        return -1;
    }
    return 0;
}
