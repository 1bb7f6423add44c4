/* mha_layer.c - a multi-head attention layer: forward, backward, save.
 * Computes what torch.nn.MultiheadAttention(8, 2, batch_first=True) does. */
#include <attn/attn.h>
#include <attn/mha.h>
#include <attn/mha_io.h>
#include <stdio.h>

#define N 1
#define L 3
#define E 8

int main(void)
{
    attn_mha_config cfg = attn_mha_default_config(E, 2); /* E = 8, 2 heads of 4 */
    attn_mha *mha = NULL;
    attn_mha_cache *cache = NULL;
    float x[N * L * E], out[N * L * E], weights[N * 2 * L * L], d_out[N * L * E], d_x[N * L * E];
    for (int i = 0; i < N * L * E; i++) x[i] = (float)((i * 7) % 5) / 5.0f, d_out[i] = 1.0f, d_x[i] = 0;
    attn_mha_inputs in = {0};
    in.batch = N, in.tgt_len = L, in.src_len = L;
    in.query = in.key = in.value = x; /* self-attention */
    in.causal = ATTN_CAUSAL_TOP_LEFT;
    if (attn_mha_create(&mha, &cfg) || attn_mha_init(mha, 42) || attn_mha_cache_create(&cache) ||
        attn_mha_forward(mha, out, weights, 0, &in, cache, NULL) ||
        attn_mha_backward(mha, d_x, d_x, d_x, d_out, &in, cache) ||
        attn_mha_save_safetensors(mha, "mha_layer.safetensors")) {
        fprintf(stderr, "mha: %s\n", attn_last_error());
        return 1;
    }
    printf("head 0, token 2 attends [%.3f %.3f %.3f]; d loss / d x[0] = %.4f\n", weights[6],
           weights[7], weights[8], d_x[0]);
    attn_mha_cache_free(cache);
    attn_mha_free(mha);
    return 0;
}
