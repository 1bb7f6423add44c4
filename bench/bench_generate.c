/* bench_generate.c - generation with and without the KV cache, timed in the
 * same process and interleaved (these machines are shared and noisy: read the
 * medians and the paired ratios, not single runs).
 *
 *   build/bench_generate MODEL_DIR [TOKENS (256)] [REPS (7)]
 *
 * Each repetition generates TOKENS tokens greedily after a one-token prompt
 * (a newline, as `attn generate` without --prompt) with the cache and without
 * it (the order alternates), checks that both give the same tokens, and
 * records ms per token of each and their ratio. Preemption on a busy machine
 * adds milliseconds to random steps, so a second estimate sums, over the
 * token positions, the median over repetitions of that position's step time
 * (each step's cost does not vary from one repetition to the next: the same
 * tokens, the same windows). The cached run's per-token times also split into
 * one-token steps and the steps that refill the cache when the window
 * restarts. OMP_NUM_THREADS sets the threads. */
#define _POSIX_C_SOURCE 200809L
#include <attn/gpt.h>
#include <attn/tokenizer.h>
#include <attn/train.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct run {
    uint32_t *tokens;
    double *at; /* time of each token since the start */
    size_t n;
    double t0;
} run;

static int on_token(uint32_t id, void *user)
{
    run *r = user;
    r->tokens[r->n] = id;
    r->at[r->n++] = now() - r->t0;
    return 0;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_generate: %s: %s\n", what, attn_last_error());
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_generate MODEL_DIR [TOKENS] [REPS]\n");
        return 2;
    }
    const size_t tokens = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 256;
    const int reps = argc > 3 ? atoi(argv[3]) : 7;
    if (!tokens || reps < 1 || reps > 1000) {
        fprintf(stderr, "bench_generate: TOKENS >= 1 and 1 <= REPS <= 1000\n");
        return 2;
    }
    attn_checkpoint info;
    attn_gpt *g = NULL;
    attn_tokenizer *tok = NULL;
    if (attn_checkpoint_load(argv[1], 1, &info, &g, &tok)) die("loading the model");
    uint32_t *prompt = NULL;
    size_t n_prompt = 0;
    if (attn_tokenizer_encode(tok, "\n", 1, "prompt", &prompt, &n_prompt)) die("prompt");
    const attn_gpt_config *c = attn_gpt_get_config(g);
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("bench_generate: %zu layers, %zu heads, width %zu, context %zu, vocabulary %zu; "
           "%zu tokens, %d reps, %d threads\n",
           c->layers, c->heads, c->width, c->context, c->vocab_size, tokens, reps, threads);

    run r[2];
    for (int k = 0; k < 2; k++) {
        r[k].tokens = malloc(tokens * sizeof(uint32_t));
        r[k].at = malloc(tokens * sizeof(double));
        if (!r[k].tokens || !r[k].at) {
            fprintf(stderr, "bench_generate: out of memory\n");
            return 1;
        }
    }
    double *ms[2], *ratio = malloc((size_t)reps * sizeof(double));
    double *step = malloc(tokens * (size_t)reps * sizeof(double));
    double *refill = malloc(tokens * (size_t)reps * sizeof(double));
    ms[0] = malloc((size_t)reps * sizeof(double)), ms[1] = malloc((size_t)reps * sizeof(double));
    if (!ms[0] || !ms[1] || !ratio || !step || !refill) {
        fprintf(stderr, "bench_generate: out of memory\n");
        return 1;
    }
    size_t n_step = 0, n_refill = 0;
    /* dt[k][t * reps + i]: step t's time in repetition i */
    double *dt[2] = {malloc(tokens * (size_t)reps * sizeof(double)),
                     malloc(tokens * (size_t)reps * sizeof(double))};
    if (!dt[0] || !dt[1]) {
        fprintf(stderr, "bench_generate: out of memory\n");
        return 1;
    }
    attn_generate_opts o;
    memset(&o, 0, sizeof o);
    o.max_new = tokens, o.sample.temperature = 0.0f, o.sample.top_p = 1.0f, o.seed = 1;
    for (int i = 0; i < reps; i++) {
        for (int j = 0; j < 2; j++) {
            const int k = (i + j) % 2; /* k = 0: cache; the order alternates */
            o.use_cache = k == 0;
            r[k].n = 0;
            r[k].t0 = now();
            if (attn_gpt_generate(g, prompt, n_prompt, &o, on_token, &r[k])) die("generate");
            ms[k][i] = 1e3 * r[k].at[r[k].n - 1] / (double)r[k].n;
        }
        if (r[0].n != r[1].n || memcmp(r[0].tokens, r[1].tokens, r[0].n * sizeof(uint32_t))) {
            fprintf(stderr, "bench_generate: the cached and uncached tokens differ\n");
            return 1;
        }
        for (int k = 0; k < 2; k++)
            for (size_t t = 0; t < tokens; t++)
                dt[k][t * (size_t)reps + (size_t)i] = r[k].at[t] - (t ? r[k].at[t - 1] : 0.0);
        ratio[i] = ms[1][i] / ms[0][i];
        printf("rep %d: %.3f ms/token with the cache, %.3f without: %.1fx\n", i + 1, ms[0][i],
               ms[1][i], ratio[i]);
        /* Per-token times of the cached run: the window (re)starts where
         * attn_gpt_generate restarts it, i.e. when a step refills the cache. */
        size_t start = 0, len = n_prompt;
        for (size_t t = 0; t < r[0].n; t++) {
            const double ms_t = 1e3 * (r[0].at[t] - (t ? r[0].at[t - 1] : 0.0));
            int prefill = t == 0;
            if (len - start > c->context) {
                start = len - attn_gpt_window_keep(c);
                prefill = 1;
            }
            if (prefill) refill[n_refill++] = ms_t;
            else step[n_step++] = ms_t;
            len++;
        }
    }
    double mc = median(ms[0], (size_t)reps), mn = median(ms[1], (size_t)reps);
    double mr = median(ratio, (size_t)reps);
    printf("median: %.3f ms/token with the cache, %.3f without; ratio of medians %.1fx, "
           "median ratio %.1fx\n",
           mc, mn, mn / mc, mr);
    double f[2] = {0.0, 0.0};
    for (int k = 0; k < 2; k++) {
        for (size_t t = 0; t < tokens; t++) f[k] += median(dt[k] + t * (size_t)reps, (size_t)reps);
        f[k] *= 1e3 / (double)tokens;
    }
    printf("per-position medians: %.3f ms/token with the cache, %.3f without: %.1fx\n", f[0],
           f[1], f[1] / f[0]);
    printf("cached run: one-token step median %.3f ms (%zu), prefill/refill step median %.3f ms "
           "(%zu)\n",
           median(step, n_step), n_step, n_refill ? median(refill, n_refill) : 0.0, n_refill);
    for (int k = 0; k < 2; k++) free(r[k].tokens), free(r[k].at);
    free(dt[0]), free(dt[1]);
    free(ms[0]), free(ms[1]), free(ratio), free(step), free(refill), free(prompt);
    attn_gpt_free(g);
    attn_tokenizer_free(tok);
    return 0;
}
