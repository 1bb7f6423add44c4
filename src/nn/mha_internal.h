/* mha_internal.h - the layer's private layout, shared by mha.c (forward and
 * backward) and mha_params.c (creation, parameters, initialisation). */
#ifndef ATTN_MHA_INTERNAL_H
#define ATTN_MHA_INTERNAL_H

#include "attn/mha.h"

#define MAX_PARAMS 8

typedef struct param_entry {
    const char *name;
    size_t offset, numel;
    int ndim;
    size_t shape[3];
} param_entry;

struct attn_mha {
    attn_mha_config cfg;
    size_t hq, hv;             /* H·d_k, H·d_v */
    int packed;
    attn_arena *arena;         /* parameters and gradients */
    attn_tensor params, grads; /* flat views */
    param_entry table[MAX_PARAMS];
    size_t n_table;
    /* offsets of each part in the flat arrays; SIZE_MAX when absent */
    size_t o_wq, o_wk, o_wv, o_bin, o_wo, o_bo, o_bk, o_bv;
    attn_workspace ws; /* scratch of calls whose inputs bring no workspace */
};

struct attn_mha_cache {
    size_t batch, tgt_len, kv_len, src_len;
    float *qp, *kp, *vp, *probs, *concat, *lse; /* pieces of ws */
    attn_workspace ws; /* one block, grown to the largest forward and kept */
    int fused; /* the forward ran the fused kernels: lse (N, H, L) instead of probs */
    /* 0, or self-attention's projections in one block (N·L, 3E): qp, kp and
     * vp are its column ranges, rows qkv_rs floats apart */
    size_t qkv_rs;
};

#define ABSENT ((size_t)-1)

static inline const float *mha_part(const attn_mha *m, size_t offset)
{
    return offset == ABSENT ? NULL : m->params.data + offset;
}

static inline float *mha_grad_part(attn_mha *m, size_t offset)
{
    return offset == ABSENT ? NULL : m->grads.data + offset;
}

#endif
