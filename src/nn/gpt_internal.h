/* gpt_internal.h - the layout of attn_gpt, shared by gpt.c and gpt_kv.c. */
#ifndef ATTN_GPT_INTERNAL_H
#define ATTN_GPT_INTERNAL_H

#include "attn/gpt.h"
#include "attn/mha.h"
#include "attn/tensor.h"

#define GPT_LN_EPS 1e-5f

typedef struct gpt_block {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b, *fc_w, *fc_b, *proj_w, *proj_b;
    float *g_ln1_w, *g_ln1_b, *g_ln2_w, *g_ln2_b, *g_fc_w, *g_fc_b, *g_proj_w, *g_proj_b;
    attn_mha *mha;
    attn_mha_cache *cache;
    const float *in_w, *in_b, *out_w, *out_b; /* inside the mha's own storage */
    /* saved activations, each (max_rows, ·) */
    float *res, *ln1, *ln1_mean, *ln1_rstd, *mid, *ln2, *ln2_mean, *ln2_rstd, *fc, *act;
} gpt_block;

struct attn_gpt {
    attn_gpt_config cfg;
    size_t max_batch, max_rows;
    attn_arena *params, *grads, *acts;
    float *wte, *wpe, *lnf_w, *lnf_b;
    float *g_wte, *g_wpe, *g_lnf_w, *g_lnf_b;
    gpt_block *blocks;
    attn_param_ref *table;
    size_t n_table, n_params;
    char *names; /* storage of the table's names */
    /* activations */
    float *res_out, *lnf, *lnf_mean, *lnf_rstd, *logits, *probs, *row_loss, *scratch;
    float *d_logits, *d_res, *d_tmp, *d_big1, *d_big2;
    uint32_t *pos, *ids, *targets;
    size_t batch, seq; /* of the last forward */
    int have_targets;
};

#endif
