/* test_metrics.c - KL divergence, top-1, perplexity and percentiles against values worked
 * out by hand, and determinism of the accumulator across thread counts. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "metrics.h"
#include "sampler.h"
#include "threadpool.h"

static int close_rel(double a, double b, double tol) {
    if (a == b) return 1;
    return fabs(a - b) <= tol * fmax(fabs(a), fabs(b));
}

/* xorshift for reproducible random logits */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

int main(void) {
    fq_pos_metrics pm;

    /* identical rows: exactly 0, whatever the values */
    {
        float a[7] = {1.5f, -2.0f, 0.25f, 9.0f, 3.0f, -40.0f, 8.999f};
        fq_metrics_position(a, a, 7, 4, &pm);
        CHECK(pm.kld == 0.0, "KL of identical rows = %.3g", pm.kld);
        CHECK(pm.top1_same == 1, "top-1 of identical rows");
        CHECK(pm.dp == 0.0, "dp of identical rows = %.3g", pm.dp);
        CHECK(pm.max_abs_logit_diff == 0.0, "max diff of identical rows");
        CHECK(pm.nll_base == pm.nll_fq, "nll of identical rows");
    }
    /* a shift of every logit leaves the distribution unchanged */
    {
        float a[5] = {0.125f, 0.75f, -1.0f, 2.0f, 0.0f}, b[5]; /* exact in float after +4 */
        for (int i = 0; i < 5; i++) b[i] = a[i] + 4.0f;
        fq_metrics_position(a, b, 5, 1, &pm);
        CHECK(pm.kld < 1e-14, "KL under a shift = %.3g", pm.kld);
        CHECK(fabs(pm.dp) < 1e-14, "dp under a shift = %.3g", pm.dp);
        CHECK(pm.max_abs_logit_diff == 4.0, "max diff %.9g", pm.max_abs_logit_diff);
    }
    /* two-point distributions: p = (1/2, 1/2), q = (0.9, 0.1) from logits log p, log q */
    {
        float a[2] = {0.0f, 0.0f};
        float b[2] = {(float)log(0.9), (float)log(0.1)};
        fq_metrics_position(a, b, 2, 1, &pm);
        /* with q as the float-rounded logits actually hold it */
        double q0 = exp((double)b[0]) / (exp((double)b[0]) + exp((double)b[1])), q1 = 1 - q0;
        double want = 0.5 * log(0.5 / q0) + 0.5 * log(0.5 / q1);
        CHECK(close_rel(pm.kld, want, 1e-12), "KL(1/2,1/2 || 0.9,0.1) = %.17g, want %.17g", pm.kld, want);
        CHECK(close_rel(pm.kld, 0.5108256237659907, 1e-6), "KL = %.9g, want 0.5108256", pm.kld);
        CHECK(pm.top1_same == 1, "ties: lowest index is the argmax of both");
        CHECK(close_rel(pm.nll_base, log(2.0), 1e-15), "nll base %.17g", pm.nll_base);
        CHECK(close_rel(pm.nll_fq, -log(q1), 1e-12), "nll fq %.17g", pm.nll_fq);
        CHECK(close_rel(pm.dp, q1 - 0.5, 1e-12), "dp %.17g", pm.dp);
        /* and the other way round: KL is not symmetric */
        fq_metrics_position(b, a, 2, -1, &pm);
        double rev = q0 * log(q0 / 0.5) + q1 * log(q1 / 0.5);
        CHECK(close_rel(pm.kld, rev, 1e-12), "KL(0.9,0.1 || 1/2,1/2) = %.17g, want %.17g", pm.kld, rev);
        CHECK(isnan(pm.dp) && isnan(pm.nll_base), "no next token: nll and dp are NaN");
    }
    /* three-point: p = (0.7, 0.2, 0.1), q = (0.2, 0.7, 0.1): argmax differs */
    {
        float a[3] = {(float)log(0.7), (float)log(0.2), (float)log(0.1)};
        float b[3] = {(float)log(0.2), (float)log(0.7), (float)log(0.1)};
        fq_metrics_position(a, b, 3, 0, &pm);
        double pa[3], pb[3], sa = 0, sb = 0;
        for (int i = 0; i < 3; i++) sa += exp((double)a[i]), sb += exp((double)b[i]);
        for (int i = 0; i < 3; i++) pa[i] = exp((double)a[i]) / sa, pb[i] = exp((double)b[i]) / sb;
        double want = 0;
        for (int i = 0; i < 3; i++) want += pa[i] * log(pa[i] / pb[i]);
        CHECK(close_rel(pm.kld, want, 1e-12), "3-point KL %.17g want %.17g", pm.kld, want);
        CHECK(close_rel(pm.kld, 0.5 * log(3.5), 1e-6), "3-point KL %.9g want 0.5 ln 3.5", pm.kld);
        CHECK(pm.top1_same == 0, "argmax differs");
        CHECK(close_rel(pm.dp, pb[0] - pa[0], 1e-12), "dp %.9g", pm.dp);
    }
    /* extreme logits do not overflow (the maximum is subtracted) */
    {
        float a[3] = {1000.0f, 999.0f, -1000.0f}, b[3] = {999.0f, 1000.0f, -1000.0f};
        fq_metrics_position(a, b, 3, 1, &pm);
        double want = (1 - 2 * (1 / (1 + exp(1.0)))) * 1.0; /* p ln(p/q) with p, q swapped 2-point */
        CHECK(isfinite(pm.kld) && close_rel(pm.kld, want, 1e-9), "large logits KL %.17g want %.17g", pm.kld, want);
    }
    /* non-finite logits are reported, not hidden: no KL (NaN, not a number to average), no
     * top-1 agreement, and the row that holds them is named */
    {
        float a[3] = {1, 2, 3}, b[3] = {1, NAN, 3};
        fq_metrics_position(a, b, 3, 1, &pm);
        CHECK(isnan(pm.kld) && pm.nonfinite == 2 && !pm.top1_same, "NaN logit: KL %g, nonfinite %d, top-1 %d", pm.kld,
              pm.nonfinite, pm.top1_same);
        CHECK(isfinite(pm.nll_base) && isnan(pm.nll_fq) && isnan(pm.dp), "NaN row: its nll is NaN, the other's kept");
        /* two all-NaN rows have the same "argmax" 0: that is not an agreement */
        float n1[3] = {NAN, NAN, NAN}, n2[3] = {NAN, NAN, NAN};
        fq_metrics_position(n1, n2, 3, 0, &pm);
        CHECK(pm.nonfinite == 3 && !pm.top1_same && isnan(pm.kld), "all-NaN rows: nonfinite %d top-1 %d", pm.nonfinite,
              pm.top1_same);
        float inf[3] = {1, INFINITY, 3};
        fq_metrics_position(a, inf, 3, 0, &pm);
        CHECK(pm.nonfinite == 2 && isnan(pm.kld), "Inf logit: nonfinite %d KL %g", pm.nonfinite, pm.kld);
    }
    /* an accumulator with non-finite positions: counted, and no figure that would hide them */
    {
        fq_metrics m;
        fq_metrics_init(&m);
        fq_err e;
        float a[3] = {1, 2, 3}, b[3] = {1, 2.5f, 3}, nb[3] = {NAN, NAN, NAN};
        fq_pos_metrics p1, p2, p3;
        fq_metrics_position(a, b, 3, 1, &p1);
        fq_metrics_position(nb, nb, 3, 2, &p2);
        fq_metrics_position(a, nb, 3, 0, &p3);
        fq_metrics_add(&m, &p1, &e);
        fq_metrics_add(&m, &p2, &e);
        fq_metrics_add(&m, &p3, &e);
        fq_metrics_summary s;
        CHECK(fq_metrics_summarize(&m, &s, &e) == 0, "summary");
        CHECK(s.n_pos == 3 && s.n_nonfinite == 2 && s.n_nonfinite_base == 1 && s.n_nonfinite_fq == 2 && s.n_scored == 3,
              "counts: pos %lld nonfinite %lld base %lld fq %lld scored %lld", (long long)s.n_pos,
              (long long)s.n_nonfinite, (long long)s.n_nonfinite_base, (long long)s.n_nonfinite_fq,
              (long long)s.n_scored);
        CHECK(isnan(s.mean_kld) && isnan(s.kld_p99) && isnan(s.max_kld) && isnan(s.top1_agree) && s.n_top1 == 1 &&
                  isnan(s.ppl_fq) && isnan(s.ppl_base) && isnan(s.ppl_ratio) && isnan(s.dp_mean),
              "figures with NaN positions: KL %g p99 %g top-1 %g ppl %g/%g", s.mean_kld, s.kld_p99, s.top1_agree,
              s.ppl_base, s.ppl_fq);
        fq_metrics_free(&m);
        /* the fake-quant run alone non-finite: the baseline's perplexity is still a figure */
        fq_metrics_init(&m);
        fq_metrics_add(&m, &p1, &e);
        fq_metrics_add(&m, &p3, &e);
        fq_metrics_summarize(&m, &s, &e);
        CHECK(isfinite(s.ppl_base) && isnan(s.ppl_fq) && s.n_nonfinite == 1, "base ppl %g fq ppl %g", s.ppl_base,
              s.ppl_fq);
        fq_metrics_free(&m);
    }
    /* the sampler with NaN/Inf logits: never out of bounds (ASan), never a NaN or -Inf token,
     * the same token for the same seed, and -1 when nothing can be drawn */
    {
        enum { V = 512 };
        float *l = malloc(V * sizeof(float));
        fq_sampler_params sp;
        fq_sampler_defaults(&sp);
        fq_err e;
        int bad = 0, ok = 1;
        for (int trial = 0; trial < 200; trial++) {
            for (int i = 0; i < V; i++) {
                const double u = urand();
                l[i] = u < 0.3 ? NAN : u < 0.35 ? -INFINITY : (float)(urand() * 8 - 4);
            }
            sp.seed = (uint64_t)trial;
            sp.top_k = trial % 3 == 0 ? 0 : trial % 3 == 1 ? 40 : 400;
            sp.temp = trial % 5 == 0 ? 0.0f : 0.8f;
            fq_sampler *s1 = fq_sampler_new(&sp, V, &e), *s2 = fq_sampler_new(&sp, V, &e);
            const int t1 = fq_sampler_sample(s1, l), t2 = fq_sampler_sample(s2, l);
            if (t1 < 0 || t1 >= V || isnan(l[t1]) || l[t1] == -INFINITY) bad++;
            if (t1 != t2) ok = 0;
            fq_sampler_free(s1);
            fq_sampler_free(s2);
        }
        CHECK(bad == 0 && ok, "sampling with NaN logits: %d bad tokens, deterministic %d", bad, ok);
        for (int i = 0; i < V; i++) l[i] = NAN;
        l[77] = -INFINITY;
        sp.temp = 0.8f;
        fq_sampler *s = fq_sampler_new(&sp, V, &e);
        CHECK(fq_sampler_sample(s, l) == -1, "all NaN / -Inf: nothing to draw");
        sp.temp = 0.0f;
        fq_sampler *g = fq_sampler_new(&sp, V, &e);
        CHECK(fq_sampler_sample(g, l) == -1, "greedy, all NaN: nothing to draw");
        l[300] = INFINITY;
        l[5] = 3.0f;
        CHECK(fq_sampler_sample(s, l) == 300 && fq_sampler_sample(g, l) == 300, "+Inf outweighs every finite logit");
        l[0] = NAN;
        l[1] = 1.0f;
        CHECK(fq_argmax(l, V) == 300, "argmax skips NaN: %d", fq_argmax(l, V));
        for (int i = 0; i < V; i++) l[i] = NAN;
        CHECK(fq_argmax(l, V) == -1, "argmax of all NaN is -1");
        fq_sampler_free(s);
        fq_sampler_free(g);
        free(l);
    }

    /* percentiles, linear interpolation */
    {
        double x[5] = {1, 2, 3, 4, 5};
        CHECK(fq_percentile_sorted(x, 5, 50) == 3, "median");
        CHECK(fq_percentile_sorted(x, 5, 25) == 2, "p25");
        CHECK(close_rel(fq_percentile_sorted(x, 5, 90), 4.6, 1e-15), "p90 %.17g", fq_percentile_sorted(x, 5, 90));
        CHECK(close_rel(fq_percentile_sorted(x, 5, 99), 4.96, 1e-15), "p99");
        CHECK(fq_percentile_sorted(x, 5, 0) == 1 && fq_percentile_sorted(x, 5, 100) == 5, "ends");
        CHECK(fq_percentile_sorted(x, 1, 73) == 1, "n = 1");
        CHECK(isnan(fq_percentile_sorted(x, 0, 50)), "n = 0 gives NaN");
        double y[4] = {0, 10, 20, 30};
        CHECK(close_rel(fq_percentile_sorted(y, 4, 50), 15, 1e-15), "even count median");
    }

    /* perplexity and llama-perplexity's error estimate */
    {
        fq_ppl p = {0};
        fq_ppl_add(&p, 1);
        fq_ppl_add(&p, 2);
        fq_ppl_add(&p, 3);
        CHECK(close_rel(fq_ppl_value(&p), exp(2.0), 1e-15), "ppl %.17g", fq_ppl_value(&p));
        /* var = mean(nll^2) - mean^2 = 14/3 - 4; err = ppl sqrt(var / (n - 1)) */
        double want = exp(2.0) * sqrt((14.0 / 3.0 - 4.0) / 2.0);
        CHECK(close_rel(fq_ppl_error(&p), want, 1e-12), "ppl err %.17g want %.17g", fq_ppl_error(&p), want);
        fq_ppl one = {0};
        fq_ppl_add(&one, 0.5);
        CHECK(fq_ppl_error(&one) == 0, "one token: no error estimate");
        fq_ppl none = {0};
        CHECK(isnan(fq_ppl_value(&none)), "no tokens: NaN");
        float l[4] = {0, 0, 0, 0};
        CHECK(close_rel(fq_nll(l, 4, 2), log(4.0), 1e-15), "uniform nll");
    }

    /* the accumulator: known figures on a small set, and the same bits for any thread count */
    {
        enum { R = 37, V = 300 };
        float *base = malloc(sizeof(float) * R * V), *fq = malloc(sizeof(float) * R * V);
        int32_t next[R];
        for (int i = 0; i < R * V; i++) {
            base[i] = (float)(4 * urand() - 2);
            fq[i] = base[i] + (float)(0.05 * (urand() - 0.5));
        }
        for (int r = 0; r < R; r++) next[r] = r + 1 < R ? (int32_t)(urand() * V) : -1;
        fq_err e;
        fq_metrics m1, m4;
        fq_metrics_init(&m1);
        fq_metrics_init(&m4);
        CHECK(fq_metrics_add_rows(&m1, base, fq, R, V, next, NULL, &e) == 0, "add rows");
        fq_pool *pool = fq_pool_new(4, &e);
        CHECK(pool != NULL, "pool");
        /* in two batches, on 4 threads */
        CHECK(fq_metrics_add_rows(&m4, base, fq, 20, V, next, pool, &e) == 0, "add rows, part 1");
        CHECK(fq_metrics_add_rows(&m4, base + 20 * V, fq + 20 * V, R - 20, V, next + 20, pool, &e) == 0, "part 2");
        fq_metrics_summary s1, s4;
        CHECK(fq_metrics_summarize(&m1, &s1, &e) == 0 && fq_metrics_summarize(&m4, &s4, &e) == 0, "summaries");
        CHECK(s1.mean_kld == s4.mean_kld && s1.kld_stderr == s4.kld_stderr && s1.kld_p99 == s4.kld_p99 &&
                  s1.ppl_fq == s4.ppl_fq && s1.dp_median == s4.dp_median,
              "1 thread vs 4 threads in two batches: %.17g vs %.17g", s1.mean_kld, s4.mean_kld);
        /* against a direct computation */
        double sum = 0, sum2 = 0, mx = 0, nllb = 0, nllf = 0;
        int top = 0;
        double *k = malloc(sizeof(double) * R);
        for (int r = 0; r < R; r++) {
            fq_metrics_position(base + r * V, fq + r * V, V, next[r], &pm);
            k[r] = pm.kld;
            sum += pm.kld;
            mx = fmax(mx, pm.kld);
            top += pm.top1_same;
            if (next[r] >= 0) nllb += pm.nll_base, nllf += pm.nll_fq;
        }
        double mean = sum / R;
        for (int r = 0; r < R; r++) sum2 += (k[r] - mean) * (k[r] - mean);
        CHECK(s1.n_pos == R && s1.n_scored == R - 1, "counts %lld %lld", (long long)s1.n_pos, (long long)s1.n_scored);
        CHECK(close_rel(s1.mean_kld, mean, 1e-14), "mean KL %.17g vs %.17g", s1.mean_kld, mean);
        CHECK(close_rel(s1.kld_stderr, sqrt(sum2 / (R - 1) / R), 1e-12), "stderr %.17g", s1.kld_stderr);
        CHECK(s1.max_kld == mx, "max KL");
        CHECK(close_rel(s1.top1_agree, (double)top / R, 1e-15), "top-1 %.6f", s1.top1_agree);
        CHECK(close_rel(s1.ppl_base, exp(nllb / (R - 1)), 1e-13), "ppl base %.17g", s1.ppl_base);
        CHECK(close_rel(s1.ppl_ratio, exp(nllf / (R - 1)) / exp(nllb / (R - 1)), 1e-12), "ppl ratio");
        CHECK(s1.kld_median <= s1.kld_p90 && s1.kld_p90 <= s1.kld_p99 && s1.kld_p99 <= s1.max_kld, "percentiles ordered");
        CHECK(s1.dp_min <= s1.dp_p1 && s1.dp_p1 <= s1.dp_median && s1.dp_median <= s1.dp_p99 && s1.dp_p99 <= s1.dp_max,
              "dp percentiles ordered");
        /* identical inputs through the accumulator */
        fq_metrics z;
        fq_metrics_init(&z);
        fq_metrics_add_rows(&z, base, base, R, V, next, pool, &e);
        fq_metrics_summary sz;
        fq_metrics_summarize(&z, &sz, &e);
        CHECK(sz.mean_kld == 0 && sz.max_kld == 0 && sz.kld_p99 == 0 && sz.top1_agree == 1 && sz.ppl_ratio == 1 &&
                  sz.dp_mean == 0,
              "self: KL %.3g top-1 %.3f ratio %.17g", sz.mean_kld, sz.top1_agree, sz.ppl_ratio);
        fq_metrics_free(&z);
        fq_metrics_free(&m1);
        fq_metrics_free(&m4);
        fq_pool_free(pool);
        free(k);
        free(base);
        free(fq);
    }
    /* an empty accumulator summarizes to NaN, not garbage */
    {
        fq_metrics m;
        fq_metrics_init(&m);
        fq_metrics_summary s;
        fq_err e;
        CHECK(fq_metrics_summarize(&m, &s, &e) == 0, "empty summary");
        CHECK(isnan(s.mean_kld) && isnan(s.top1_agree) && isnan(s.ppl_base) && s.n_pos == 0, "empty is NaN");
        fq_metrics_free(&m);
    }
    return TEST_END();
}
