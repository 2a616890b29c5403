/* cli.h - subcommands of the fqlm program. Each returns the process exit status:
 * 0 success, 1 runtime failure (bad file, bad model, I/O), 2 usage error, 3 NaN/Inf in the
 * logits (CLI_EXIT_NONFINITE: what was printed ran, but its figures or text are not valid),
 * 130 interrupted. */
#ifndef FQ_CLI_H
#define FQ_CLI_H

#define CLI_EXIT_NONFINITE 3

#define FQ_CMD(name) int name(int argc, char **argv)
FQ_CMD(cmd_run);
FQ_CMD(cmd_inspect);
FQ_CMD(cmd_formats);
FQ_CMD(cmd_bench);
FQ_CMD(cmd_compare);
FQ_CMD(cmd_ppl);
FQ_CMD(cmd_sweep);
FQ_CMD(cmd_plan);
FQ_CMD(cmd_diff);
FQ_CMD(cmd_demo);
FQ_CMD(cmd_synth);
FQ_CMD(cmd_quantize);
FQ_CMD(cmd_tokenize);

/* --seeds K: the mean of n figures (in order) and their sample standard deviation (0 for
 * n = 1; NaN when a figure is). compare, sweep and plan all use this one, so a plan's mean
 * and compare --seeds' mean are the same bits. */
static inline void cli_mean_sd(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    const double m = n > 0 ? s / n : 0;
    for (int i = 0; i < n; i++) q += (v[i] - m) * (v[i] - m);
    *mean = m;
    *sd = n > 1 ? __builtin_sqrt(q / (n - 1)) : (m == m ? 0 : m);
}

/* Prints "fqlm: error: ..." to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
