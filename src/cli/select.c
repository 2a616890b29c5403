/* select.c - layer and format lists of sweep and plan. */
#include "select.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fqlm.h"

int cli_parse_layers(const char *opt, const char *list, int n_layer, int **layers, int *n) {
    *layers = NULL;
    *n = 0;
    unsigned char *on = calloc((size_t)(n_layer > 0 ? n_layer : 1), 1);
    if (!on) return -1;
    if (!strcmp(list, "*") || !strcmp(list, "all") || !strcmp(list, "-1")) {
        memset(on, 1, (size_t)n_layer);
    } else {
        const char *p = list;
        if (!*p) { /* it would select nothing and call that done */
            cli_error("%s: the list is empty (use N, N-M, N,M,... or * for all)", opt);
            free(on);
            return -1;
        }
        while (*p) {
            char *end;
            errno = 0;
            long a = strtol(p, &end, 10), b;
            if (end == p || errno) goto bad;
            b = a;
            p = end;
            if (*p == '-') {
                p++;
                b = strtol(p, &end, 10);
                if (end == p) goto bad;
                p = end;
            }
            if (*p && *p != ',') goto bad;
            if (*p == ',' && !*++p) goto bad; /* a trailing comma: something left out? */
            if (b < a) {
                cli_error("%s: the range %ld-%ld in '%s' runs backwards (write %ld-%ld)", opt, a, b, list, b, a);
                free(on);
                return -1;
            }
            for (long L = a; L <= b; L++) {
                if (L < 0 || L >= n_layer) {
                    cli_error("%s: layer %ld out of range: the model has layers 0-%d", opt, L, n_layer - 1);
                    free(on);
                    return -1;
                }
                on[L] = 1;
            }
        }
    }
    *layers = malloc((size_t)(n_layer > 0 ? n_layer : 1) * sizeof(int));
    if (!*layers) {
        free(on);
        return -1;
    }
    for (int L = 0; L < n_layer; L++)
        if (on[L]) (*layers)[(*n)++] = L;
    free(on);
    return 0;
bad:
    cli_error("%s: bad list '%s' (use N, N-M, N,M,... or * for all)", opt, list);
    free(on);
    return -1;
}

int cli_parse_formats(const char *opt, const char *list, char ***out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    char *copy = strdup(list);
    char **specs = calloc(strlen(list) + 1, sizeof(char *));
    char **canon = calloc(strlen(list) + 1, sizeof(char *));
    int n = 0, nc = 0, rc = -1;
    if (!copy || !specs || !canon) goto out;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        if (!*t) continue;
        const int standalone = fqlm_format_info(t, NULL, 0, NULL) == 0;
        if (n > 0 && strchr(specs[n - 1], ':') && !standalone) {
            size_t l = strlen(specs[n - 1]) + strlen(t) + 2;
            char *joined = malloc(l);
            if (!joined) goto out;
            snprintf(joined, l, "%s,%s", specs[n - 1], t);
            free(specs[n - 1]);
            specs[n - 1] = joined;
            continue;
        }
        if (!(specs[n] = strdup(t))) goto out;
        n++;
    }
    for (int i = 0; i < n; i++) {
        char c[256];
        if (fqlm_format_info(specs[i], c, sizeof c, NULL)) {
            cli_error("%s: %s", opt, fqlm_last_error());
            goto out;
        }
        int dup = 0;
        for (int k = 0; k < nc; k++) dup |= !strcmp(canon[k], c);
        if (!dup && !(canon[nc++] = strdup(c))) goto out;
    }
    if (!nc) {
        cli_error("%s: no format named in '%s'", opt, list);
        goto out;
    }
    *out = canon;
    *n_out = nc;
    canon = NULL;
    rc = 0;
out:
    for (int i = 0; i < n; i++) free(specs[i]);
    free(specs);
    if (canon)
        for (int i = 0; i < nc; i++) free(canon[i]);
    free(canon);
    free(copy);
    return rc;
}
