/* umbrella.c - a program that includes only the umbrella header and uses one
 * name of every public header, built and linked against the library as a
 * user's program would be (ctest: test_umbrella_header). It fails to build
 * when attn/attn.h stops providing a header's names. */
#include <attn/attn.h>

#include <stdio.h>

typedef void (*any_fn)(void);

int main(void)
{
    attn_param_ref ref = {0}; /* params.h: types only */
    /* One function of each header, by address: the program links only when
     * the library defines them. (A cast between function pointer types is
     * fine as long as nothing calls through it.) */
    const any_fn used[] = {
        (any_fn)attn_bench_peak_measure,          /* bench.h */
        (any_fn)attn_checkpoint_load,             /* checkpoint.h */
        (any_fn)attn_cls_tokenize,                /* classify.h */
        (any_fn)attn_cls_split_read,              /* cls_data.h */
        (any_fn)attn_simd_level,                  /* cpu.h */
#ifdef ATTN_DIST_H
        (any_fn)attn_ring_rows,                   /* dist.h (with MPI) */
#endif
        (any_fn)attn_embeddings_read_csv,         /* embeddings.h */
        (any_fn)attn_encoder_create,              /* encoder.h */
        (any_fn)attn_text_matrix,                 /* explain.h */
        (any_fn)attn_model_view_check,            /* explain_model.h */
        (any_fn)attn_export_check_file,           /* export.h */
        (any_fn)attn_atomic_open,                 /* fileio.h */
        (any_fn)attn_gpt_defaults,                /* gpt.h */
        (any_fn)attn_gpt_trace_text,              /* gpt_explain.h */
        (any_fn)attn_gpt_hf_load,                 /* gpt_hf.h */
        (any_fn)attn_mha_default_config,          /* mha.h */
        (any_fn)attn_mha_config_from_safetensors, /* mha_io.h */
        (any_fn)attn_op_record,                   /* ops.h */
        (any_fn)attn_layernorm_forward,           /* ops_nn.h */
        (any_fn)attn_adamw_create,                /* optim.h */
        (any_fn)attn_plot_svg,                    /* plot.h */
        (any_fn)attn_rng_seed,                    /* rng.h */
        (any_fn)attn_dtype_name,                  /* safetensors.h */
        (any_fn)attn_self_attention,              /* selfattn.h */
        (any_fn)attn_sense_defaults,              /* sense.h */
        (any_fn)attn_last_error,                  /* status.h */
        (any_fn)attn_shape_numel,                 /* tensor.h */
        (any_fn)attn_tokenizer_vocab_size,        /* tokenizer.h */
        (any_fn)attn_trace_create,                /* trace.h */
        (any_fn)attn_trainer_create,              /* train.h */
        (any_fn)attn_gpt_hparams,                 /* train_config.h */
        (any_fn)attn_version,                     /* version.h */
        (any_fn)attn_lexname,                     /* wordnet.h */
    };
    size_t n = sizeof used / sizeof used[0];
    for (size_t i = 0; i < n; i++)
        if (!used[i]) return 1;
    /* A call or two, so the program is more than addresses. */
    attn_train_config t = attn_train_defaults();
    if (ref.numel != 0 || t.batch == 0 || attn_lr_at(&t, 0) <= 0) return 1;
    printf("libattn %s (%s): %zu headers' names linked\n", attn_version(), ATTN_VERSION_STRING, n);
    return 0;
}
