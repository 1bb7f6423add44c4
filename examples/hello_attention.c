/* hello_attention.c - self-attention on three tokens with libattn. */
#include <attn/attn.h>
#include <stdio.h>

int main(void)
{
    const float x[3 * 2] = {1, 0, 0, 1, 1, 1};   /* 3 tokens, d = 2: Q = K = V = x */
    float out[3 * 2], weights[3 * 3];
    attn_sdpa_params p = attn_sdpa_defaults();   /* scale 1/sqrt(d), no mask */
    if (attn_sdpa_forward(out, weights, x, x, x, 3, 3, 2, 2, &p, NULL) != ATTN_OK) {
        fprintf(stderr, "attention failed: %s\n", attn_last_error());
        return 1;
    }
    for (int i = 0; i < 3; i++)
        printf("token %d attends [%.3f %.3f %.3f] -> output [%.3f %.3f]\n", i, weights[3 * i],
               weights[3 * i + 1], weights[3 * i + 2], out[2 * i], out[2 * i + 1]);
    return 0;
}
