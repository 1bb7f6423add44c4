/* gpt_bench.c - generation speed with the KV cache (attn_bench_generate in
 * attn/bench.h): the prefill of a prompt and teacher-forced one-token steps,
 * timed in this process; `attn bench generate` puts them beside PyTorch and
 * the memory-bandwidth limit. */
#include "attn/bench.h"

#include <stdlib.h>
#include <string.h>

#include "attn/gpt.h"
#include "gpt_internal.h"

uint32_t attn_bench_generate_id(size_t i, size_t vocab)
{
    return vocab ? (uint32_t)((i * 7919u + 13u) % vocab) : 0; /* spread over the vocabulary */
}

/* The parameter bytes a one-token step reads: everything but the position
 * table, of which it reads one row (the token table is read whole by the
 * tied head). */
static size_t step_weight_bytes(const attn_gpt *g)
{
    const attn_gpt_config *c = &g->cfg;
    return (g->n_params - c->context * c->width + c->width) * sizeof(float);
}

/* Multiply-adds × 2 of a prefill of T tokens into an empty cache: per block
 * the projections (3C² + C² + 4C² + 4C² per token) and the causal attention
 * (query i against i + 1 keys, scores and values: 2C each), then the head on
 * the last position. */
static double prefill_flops(const attn_gpt_config *c, size_t T)
{
    const double C = (double)c->width, t = (double)T;
    return (double)c->layers * (24.0 * C * C * t + 2.0 * C * t * (t + 1.0)) +
           2.0 * C * (double)c->vocab_size;
}

attn_status attn_bench_generate(attn_gpt *g, attn_bench_gen *b)
{
    if (!g || !b) return attn_error(ATTN_E_INVALID, "attn_bench_generate: NULL argument");
    const attn_gpt_config *c = &g->cfg;
    const size_t P = b->prompt, D = b->decode, V = c->vocab_size;
    if (!P || P + D > c->context || b->reps < 1 || b->reps > ATTN_BENCH_MAX_RUNS)
        return attn_error(ATTN_E_INVALID,
                          "bench generate: need a prompt of 1..context tokens with prompt + "
                          "decode <= context (%zu + %zu, context %zu) and 1..%d repetitions",
                          P, D, c->context, ATTN_BENCH_MAX_RUNS);
    uint32_t *ids = malloc((P + D) * sizeof *ids);
    float *logits = malloc(V * sizeof(float));
    attn_gpt_kv *kv = NULL;
    attn_status st = ids && logits ? attn_gpt_kv_create(&kv, g)
                                   : attn_error(ATTN_E_NOMEM, "bench generate: out of memory");
    for (size_t i = 0; !st && i < P + D; i++) ids[i] = attn_bench_generate_id(i, V);
    double tp[ATTN_BENCH_MAX_RUNS], td[ATTN_BENCH_MAX_RUNS];
    for (int r = 0; !st && r < b->reps; r++) {
        attn_gpt_kv_reset(kv);
        double t0 = attn_bench_now();
        st = attn_gpt_kv_step(g, kv, ids, P, logits);
        tp[r] = attn_bench_now() - t0;
        if (!st && r == 0) {
            memcpy(b->logits_head, logits, (V < 8 ? V : 8) * sizeof(float));
            size_t best = 0;
            for (size_t j = 1; j < V; j++)
                if (logits[j] > logits[best]) best = j;
            b->argmax_prefill = best;
        }
        t0 = attn_bench_now();
        for (size_t i = P; !st && i < P + D; i++) st = attn_gpt_kv_step(g, kv, ids + i, 1, logits);
        td[r] = attn_bench_now() - t0;
        /* the memory's speed right after: the machine's drifts within minutes */
        if (!st && b->bw) st = attn_bench_bw_measure(b->bw, 3, &b->bw_runs[r]);
    }
    if (!st) {
        memcpy(b->prefill_runs, tp, (size_t)b->reps * sizeof *tp);
        memcpy(b->decode_runs, td, (size_t)b->reps * sizeof *td);
        b->prefill_s = attn_bench_median(tp, b->reps);
        b->decode_s = attn_bench_median(td, b->reps);
        b->prefill_flops = prefill_flops(c, P);
        b->weight_bytes = step_weight_bytes(g);
        b->kv_bytes = 2 * c->layers * (P + D / 2) * c->width * sizeof(float);
    }
    attn_gpt_kv_free(kv);
    free(ids), free(logits);
    return st;
}
