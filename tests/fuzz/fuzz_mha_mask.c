/* fuzz_mha_mask.c - the masks `attn mha` passes to the layer: the first bytes
 * choose the sizes (N, L, S in 1..4, H in 1..2), the mask kinds (bool or
 * additive), a per-head attn_mask, key padding and causality; the rest
 * are the masks' values as raw float32 (NaN, inf and all). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attn/mha.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    size_t N = 1 + (data[0] & 3), L = 1 + ((data[0] >> 2) & 3), S = 1 + ((data[0] >> 4) & 3);
    size_t H = 1 + ((data[0] >> 6) & 1);
    int flags = data[1];
    data += 2, size -= 2;
    attn_mha_config cfg = attn_mha_default_config(2 * H, H);
    cfg.add_bias_kv = (flags >> 5) & 1;
    cfg.add_zero_attn = (flags >> 6) & 1;
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &cfg) || attn_mha_init(m, 7)) {
        attn_mha_free(m);
        return 0;
    }
    const size_t E = cfg.embed_dim, S2 = attn_mha_kv_len(m, S);
    int per_head = flags & 1;
    size_t n_mask = (per_head ? N * H : 1) * L * S, n_kpm = N * S;
    float *q = malloc(N * L * E * sizeof *q), *kv = malloc(N * S * E * sizeof *kv);
    float *mask = calloc(n_mask, sizeof *mask), *kpm = calloc(n_kpm, sizeof *kpm);
    float *out = malloc(N * L * E * sizeof *out), *w = malloc(N * H * L * S2 * sizeof *w);
    if (q && kv && mask && kpm && out && w) {
        for (size_t i = 0; i < N * L * E; i++) q[i] = (float)((i * 7) % 5) - 2.0f;
        for (size_t i = 0; i < N * S * E; i++) kv[i] = (float)((i * 3) % 7) - 3.0f;
        size_t nm = size / 4 < n_mask ? size / 4 : n_mask;
        memcpy(mask, data, nm * 4);
        size_t rest = size / 4 - nm, nk = rest < n_kpm ? rest : n_kpm;
        memcpy(kpm, data + nm * 4, nk * 4);
        attn_mha_inputs in;
        memset(&in, 0, sizeof in);
        in.batch = N, in.tgt_len = L, in.src_len = S;
        in.query = q, in.key = kv, in.value = kv;
        if (flags & 2) {
            in.attn_mask = mask;
            in.attn_mask_per_head = per_head;
            in.attn_mask_kind = flags & 4 ? ATTN_MASK_ADDITIVE : ATTN_MASK_BOOL;
        }
        if (flags & 8) {
            in.key_padding_mask = kpm;
            in.key_padding_kind = flags & 16 ? ATTN_MASK_ADDITIVE : ATTN_MASK_BOOL;
        }
        in.causal = flags & 128 ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE;
        if (!attn_mha_forward(m, out, w, 0, &in, NULL, NULL)) {
            /* Bool masks with finite inputs give finite outputs (a row that
             * sees nothing gets zero weights). */
            int bool_only = !(in.attn_mask && in.attn_mask_kind == ATTN_MASK_ADDITIVE) &&
                            !(in.key_padding_mask && in.key_padding_kind == ATTN_MASK_ADDITIVE);
            for (size_t i = 0; bool_only && i < N * L * E; i++)
                if (!isfinite(out[i])) abort();
        }
    }
    free(q), free(kv), free(mask), free(kpm), free(out), free(w);
    attn_mha_free(m);
    return 0;
}
