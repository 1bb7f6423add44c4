/* gpt_internal.h - the layout of attn_gpt, shared by gpt.c and gpt_kv.c. */
#ifndef ATTN_GPT_INTERNAL_H
#define ATTN_GPT_INTERNAL_H

#include "attn/gpt.h"
#include "attn/mha.h"
#include "attn/tensor.h"
#include "block.h"

struct attn_gpt {
    attn_gpt_config cfg;
    size_t max_batch, max_rows;
    attn_arena *params, *grads, *acts;
    attn_workspace ws; /* the layers' attention scratch, shared */
    float *wte, *wpe, *lnf_w, *lnf_b;
    float *g_wte, *g_wpe, *g_lnf_w, *g_lnf_b;
    nn_block *blocks; /* the block is shared with the encoder (block.h) */
    attn_param_ref *table;
    size_t n_table, n_params;
    char *names; /* storage of the table's names */
    /* activations */
    float *res_out, *lnf, *lnf_mean, *lnf_rstd, *logits, *probs, *row_loss, *scratch;
    float *d_logits, *d_res, *d_tmp, *d_big1, *d_big2;
    uint32_t *pos, *ids, *targets;
    size_t batch, seq; /* of the last forward */
    int have_targets;
    attn_gpt_grads_hook hook; /* attn_gpt_set_backward_hook */
    void *hook_user;
};

#endif
