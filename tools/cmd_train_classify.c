/* cmd_train_classify.c - `attn train --task classify`: an encoder classifier
 * on DIR/{train,valid,test}.tsv, with the baselines on the same split. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attn/classify.h"
#include "cli.h"
#include "cmd_classify.h"

static const char usage[] =
    "usage: attn train --task classify --data DIR --out DIR [options]\n"
    "       attn train --task classify --data DIR --resume DIR [--iters N] [options]\n"
    "\n"
    "Trains a bidirectional Transformer encoder to classify the texts of\n"
    "DIR/train.tsv (label<TAB>text lines, e.g. from 'attn data wordnet'), with\n"
    "accuracy and macro-F1 on DIR/valid.tsv at each evaluation, early stopping\n"
    "that keeps the best weights, and at the end the test accuracy, macro-F1 and\n"
    "confusion matrix, beside two baselines on the same split: the majority class\n"
    "and a bag-of-words logistic regression with the same tokenizer. Checkpoints\n"
    "in DIR: config.json, model.safetensors, best.safetensors, vocab.json,\n"
    "optim.safetensors; Ctrl-C writes one and stops; --resume continues exactly.\n"
    "\n"
    "model:\n"
    "  --layers N           encoder blocks (2)\n"
    "  --heads N            attention heads (4)\n"
    "  --width N            embedding width, divisible by heads (128)\n"
    "  --context N          most tokens per text, [CLS] included (128)\n"
    "  --pooling P          mean (of the tokens) or cls (the [CLS] token) (mean)\n"
    "  --bias, --no-bias    biases in linear layers and layer norms (on)\n"
    "  --min-count N        vocabulary: words seen at least N times in train (2)\n"
    "training:\n"
    "  --epochs N           passes over train (4); --iters N sets steps instead\n"
    "  --patience N         stop after N evaluations without a better validation\n"
    "                       accuracy, 0 = never (2)\n"
    "  --batch N            texts per step (64)\n"
    "  --lr X, --min-lr X   peak and final learning rate (1e-3, 1e-4)\n"
    "  --warmup N           linear warm-up steps (100)\n"
    "  --decay-iters N      step where the cosine decay reaches min-lr (iters)\n"
    "  --weight-decay X     AdamW weight decay of matrices, not of the token\n"
    "                       embedding (updated row-sparsely) (0.01)\n"
    "  --beta1 X, --beta2 X AdamW betas (0.9, 0.999)\n"
    "  --grad-clip X        clip the global gradient norm, 0 = off (1.0)\n"
    "  --dropout P          dropout after the embeddings and on each block's\n"
    "                       attention and MLP outputs while training, 0 = off (0.1)\n"
    "  --label-smoothing E  train on (1-E)·one-hot + E/classes targets (0.1)\n"
    "  --seed N             initialisation and batch order (1337)\n"
    "progress and checkpoints:\n"
    "  --eval-every N       validate every N steps (default: every epoch) and at the end\n"
    "  --checkpoint-every N also write a checkpoint every N steps\n"
    "  --json-log FILE      one JSON object per step, and the test results at the end\n"
    "  --log-every N        plain log lines every N steps when not on a terminal (50)\n"
    "  --stop-at N          stop after step N with a checkpoint, as if interrupted\n"
    "  --no-baselines       skip the majority and bag-of-words baselines\n"
    "  --out DIR            checkpoint directory (required unless --resume); one\n"
    "                       that holds a checkpoint is refused unless --force\n"
    "  --resume DIR         continue the run in DIR (written back there unless --out)\n"
    "  --force              replace the checkpoint in --out DIR, starting at step 0\n"
    "  -h, --help           show this help\n";

static int on_progress(const attn_cls_event *ce, void *user)
{
    cli_progress *p = user;
    const attn_train_event *e = &ce->base;
    if (p->json) {
        fprintf(p->json,
                "{\"step\": %zu, \"epoch\": %zu, \"train_loss\": %.17g, \"lr\": %.9g, \"grad_norm\": %.9g, "
                "\"ms_per_iter\": %.3f, \"tokens_per_s\": %.1f",
                e->step, ce->epoch, e->train_loss, e->lr, e->grad_norm, e->ms_per_iter, e->tokens_per_s);
        if (e->evaluated)
            fprintf(p->json, ", \"val_loss\": %.17g, \"val_accuracy\": %.17g, \"val_macro_f1\": %.17g, \"best\": %s",
                    e->val_loss, ce->val_accuracy, ce->val_f1, ce->improved ? "true" : "false");
        fprintf(p->json, "}\n");
        fflush(p->json);
    }
    char val[96] = "";
    if (e->evaluated)
        snprintf(val, sizeof val, "  val %.4f acc %.4f f1 %.4f%s", e->val_loss, ce->val_accuracy,
                 ce->val_f1, ce->improved ? " *" : "");
    cli_progress_line(p, e, val);
    return 0;
}

enum {
    O_TASK = 7000, O_DATA, O_OUT, O_RESUME, O_JSON_LOG, O_LOG_EVERY, O_STOP_AT, O_NO_BASE,
    O_ITERS, O_CKPT_EVERY, O_FORCE,
    /* fixed once the run has started: */
    O_LAYERS, O_HEADS, O_WIDTH, O_CONTEXT, O_POOLING, O_BIAS, O_NO_BIAS, O_MIN_COUNT, O_EPOCHS,
    O_PATIENCE, O_BATCH, O_LR, O_MIN_LR, O_WARMUP, O_DECAY, O_WD, O_BETA1, O_BETA2, O_CLIP,
    O_SEED, O_EVAL_EVERY, O_DROPOUT, O_SMOOTH
};

static int parse_size(const char *s, size_t *out)
{
    int v;
    if (cli_parse_int(s, 0, INT_MAX, &v)) return -1;
    *out = (size_t)v;
    return 0;
}

/* The test results: the encoder's best weights and the baselines. */
static attn_status report(attn_cls_trainer *t, const char *out, int baselines, FILE *json)
{
    const attn_cls_info *in = attn_cls_trainer_info(t);
    const size_t K = in->model.classes;
    size_t *conf = calloc(K * K, sizeof *conf);
    if (!conf) return attn_error(ATTN_E_NOMEM, "out of memory");
    attn_cls_metrics enc, maj, bow;
    attn_status st = attn_cls_trainer_load_best(t, out);
    if (!st) st = attn_cls_trainer_evaluate(t, ATTN_CLS_TEST, &enc, conf);
    if (!st && baselines) st = attn_cls_trainer_baselines(t, ATTN_CLS_TEST, &maj, &bow, NULL);
    if (st) {
        free(conf);
        return st;
    }
    printf("\ntest: %zu examples, %zu classes\n", in->n_test, K);
    if (baselines) {
        printf("  %-36s accuracy %.4f  macro-F1 %.4f\n", "majority class", maj.accuracy, maj.macro_f1);
        printf("  %-36s accuracy %.4f  macro-F1 %.4f\n", "bag-of-words logistic regression",
               bow.accuracy, bow.macro_f1);
    }
    char what[64];
    snprintf(what, sizeof what, "encoder (best: step %zu)", in->best_step);
    printf("  %-36s accuracy %.4f  macro-F1 %.4f\n", what, enc.accuracy, enc.macro_f1);
    double *f1 = malloc(K * sizeof *f1);
    if (!f1) {
        free(conf);
        return attn_error(ATTN_E_NOMEM, "out of memory");
    }
    attn_cls_f1_per_class(f1, conf, K); /* the encoder's */
    printf("\nconfusion matrix (rows: true class, columns: predicted, numbered as the rows; "
           "the encoder's F1 per class)\n");
    printf("%24s", "");
    for (size_t j = 0; j < K; j++) printf(" %5zu", j + 1);
    printf("     F1\n");
    for (size_t i = 0; i < K; i++) {
        printf("%3zu %-20.20s", i + 1, in->labels[i]);
        for (size_t j = 0; j < K; j++) printf(" %5zu", conf[i * K + j]);
        printf("  %.3f\n", f1[i]);
    }
    if (json) {
        fprintf(json, "{\"test\": {\"examples\": %zu, \"encoder\": {\"accuracy\": %.17g, \"macro_f1\": %.17g, "
                      "\"best_step\": %zu}",
                in->n_test, enc.accuracy, enc.macro_f1, in->best_step);
        if (baselines)
            fprintf(json, ", \"majority\": {\"accuracy\": %.17g, \"macro_f1\": %.17g}, \"bag_of_words\": "
                          "{\"accuracy\": %.17g, \"macro_f1\": %.17g}",
                    maj.accuracy, maj.macro_f1, bow.accuracy, bow.macro_f1);
        fprintf(json, ", \"labels\": [");
        for (size_t i = 0; i < K; i++) fprintf(json, "%s\"%s\"", i ? ", " : "", in->labels[i]);
        fprintf(json, "], \"f1\": [");
        for (size_t i = 0; i < K; i++) fprintf(json, "%s%.17g", i ? ", " : "", f1[i]);
        fprintf(json, "], \"confusion\": [");
        for (size_t i = 0; i < K; i++) {
            fprintf(json, "%s[", i ? ", " : "");
            for (size_t j = 0; j < K; j++) fprintf(json, "%s%zu", j ? ", " : "", conf[i * K + j]);
            fprintf(json, "]");
        }
        fprintf(json, "]}}\n");
    }
    free(conf), free(f1);
    return ATTN_OK;
}

int cmd_train_classify(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"task", required_argument, 0, O_TASK}, {"data", required_argument, 0, O_DATA},
        {"out", required_argument, 0, O_OUT}, {"resume", required_argument, 0, O_RESUME},
        {"json-log", required_argument, 0, O_JSON_LOG}, {"log-every", required_argument, 0, O_LOG_EVERY},
        {"stop-at", required_argument, 0, O_STOP_AT}, {"no-baselines", no_argument, 0, O_NO_BASE},
        {"iters", required_argument, 0, O_ITERS}, {"checkpoint-every", required_argument, 0, O_CKPT_EVERY},
        {"layers", required_argument, 0, O_LAYERS}, {"heads", required_argument, 0, O_HEADS},
        {"width", required_argument, 0, O_WIDTH}, {"context", required_argument, 0, O_CONTEXT},
        {"pooling", required_argument, 0, O_POOLING}, {"bias", no_argument, 0, O_BIAS},
        {"no-bias", no_argument, 0, O_NO_BIAS}, {"min-count", required_argument, 0, O_MIN_COUNT},
        {"epochs", required_argument, 0, O_EPOCHS}, {"patience", required_argument, 0, O_PATIENCE},
        {"batch", required_argument, 0, O_BATCH}, {"lr", required_argument, 0, O_LR},
        {"min-lr", required_argument, 0, O_MIN_LR}, {"warmup", required_argument, 0, O_WARMUP},
        {"decay-iters", required_argument, 0, O_DECAY}, {"weight-decay", required_argument, 0, O_WD},
        {"beta1", required_argument, 0, O_BETA1}, {"beta2", required_argument, 0, O_BETA2},
        {"grad-clip", required_argument, 0, O_CLIP}, {"seed", required_argument, 0, O_SEED},
        {"eval-every", required_argument, 0, O_EVAL_EVERY}, {"dropout", required_argument, 0, O_DROPOUT},
        {"label-smoothing", required_argument, 0, O_SMOOTH}, {"force", no_argument, 0, O_FORCE},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    attn_encoder_config mc = {0, 128, 2, 4, 128, 0, 1, ATTN_POOL_MEAN};
    attn_train_config tc = attn_train_defaults();
    tc.batch = 64, tc.iters = 1, tc.warmup = 100, tc.eval_every = 0, tc.lr = 1e-3f, tc.min_lr = 1e-4f;
    tc.beta2 = 0.999f, tc.weight_decay = 0.01f;
    attn_cls_opts co = {4, 2, 2, 0.1f, 0.1f}; /* tuned on validation: docs/classify.md */
    const char *data = NULL, *out = NULL, *resume = NULL, *json_log = NULL;
    size_t log_every = 50, stop_at = 0, iters = 0, v = 0;
    int baselines = 1, c, fixed = 0, force = 0;
    float f;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        const char *name = "?";
        for (const struct option *o = longopts; o->name; o++)
            if (o->val == c) name = o->name;
        int is_size = c == O_LOG_EVERY || c == O_STOP_AT || c == O_ITERS || c == O_CKPT_EVERY ||
                      c == O_LAYERS || c == O_HEADS || c == O_WIDTH || c == O_CONTEXT ||
                      c == O_MIN_COUNT || c == O_EPOCHS || c == O_PATIENCE || c == O_BATCH ||
                      c == O_WARMUP || c == O_DECAY || c == O_SEED || c == O_EVAL_EVERY;
        int is_float = c == O_LR || c == O_MIN_LR || c == O_WD || c == O_BETA1 || c == O_BETA2 ||
                       c == O_CLIP || c == O_DROPOUT || c == O_SMOOTH;
        if (is_size && parse_size(optarg, &v))
            return cli_usage_error("train", usage, "--%s: expected an integer >= 0, found '%s'", name, optarg);
        if (is_float && cli_parse_float(optarg, &f))
            return cli_usage_error("train", usage, "--%s: expected a number, found '%s'", name, optarg);
        if (c >= O_LAYERS) fixed = c;
        switch (c) {
        case 'h': fputs(usage, stdout); return cli_finish_stdout("train");
        case O_TASK: break;
        case O_DATA: data = optarg; break;
        case O_OUT: out = optarg; break;
        case O_RESUME: resume = optarg; break;
        case O_JSON_LOG: json_log = optarg; break;
        case O_LOG_EVERY:
            if (!v) return cli_usage_error("train", usage, "--log-every: expected an integer > 0, found '%s'", optarg);
            log_every = v;
            break;
        case O_STOP_AT:
            if (!v) return cli_usage_error("train", usage, "--stop-at: expected an integer > 0, found '%s'", optarg);
            stop_at = v;
            break;
        case O_NO_BASE: baselines = 0; break;
        case O_FORCE: force = 1; break;
        case O_ITERS:
            if (!v) return cli_usage_error("train", usage, "--iters: expected an integer > 0, found '%s'", optarg);
            iters = v, co.epochs = 0;
            break;
        case O_CKPT_EVERY: tc.checkpoint_every = v; break;
        case O_LAYERS: mc.layers = v; break;
        case O_HEADS: mc.heads = v; break;
        case O_WIDTH: mc.width = v; break;
        case O_CONTEXT: mc.context = v; break;
        case O_POOLING:
            if (strcmp(optarg, "mean") && strcmp(optarg, "cls"))
                return cli_usage_error("train", usage, "--pooling: expected mean or cls, found '%s'", optarg);
            mc.pooling = strcmp(optarg, "cls") ? ATTN_POOL_MEAN : ATTN_POOL_CLS;
            break;
        case O_BIAS: mc.bias = 1; break;
        case O_NO_BIAS: mc.bias = 0; break;
        case O_MIN_COUNT:
            if (!v) return cli_usage_error("train", usage, "--min-count: expected an integer > 0, found '%s'", optarg);
            co.min_count = v;
            break;
        case O_EPOCHS:
            if (!v) return cli_usage_error("train", usage, "--epochs: expected an integer > 0, found '%s'", optarg);
            co.epochs = v;
            break;
        case O_PATIENCE: co.patience = v; break;
        case O_BATCH: tc.batch = v; break;
        case O_WARMUP: tc.warmup = v; break;
        case O_DECAY: tc.decay_iters = v; break;
        case O_SEED: tc.seed = v; break;
        case O_EVAL_EVERY: tc.eval_every = v; break;
        case O_LR: tc.lr = f; break;
        case O_MIN_LR: tc.min_lr = f; break;
        case O_WD: tc.weight_decay = f; break;
        case O_BETA1: tc.beta1 = f; break;
        case O_BETA2: tc.beta2 = f; break;
        case O_CLIP: tc.grad_clip = f; break;
        case O_DROPOUT:
            if (!(f >= 0.0f && f < 1.0f))
                return cli_usage_error("train", usage, "--dropout: expected a number in [0, 1), found '%s'", optarg);
            co.dropout = f;
            break;
        case O_SMOOTH:
            if (!(f >= 0.0f && f < 1.0f))
                return cli_usage_error("train", usage, "--label-smoothing: expected a number in [0, 1), found '%s'",
                                       optarg);
            co.label_smoothing = f;
            break;
        default: return cli_bad_option("train", usage, c, argv);
        }
    }
    if (optind < argc) return cli_usage_error("train", usage, "unexpected argument '%s'", argv[optind]);
    if (!data) return cli_usage_error("train", usage, "missing --data DIR (with train.tsv, valid.tsv, test.tsv)");
    if (!out && !resume) return cli_usage_error("train", usage, "missing --out DIR (or --resume DIR)");
    if (!out) out = resume;
    if (resume && fixed) {
        const char *name = "?";
        for (const struct option *o = longopts; o->name; o++)
            if (o->val == fixed) name = o->name;
        return cli_usage_error("train", usage, "--%s cannot be changed when resuming (the checkpoint holds it)", name);
    }
    if (iters) tc.iters = iters;
    attn_status st = ATTN_OK;
    if (!resume) {
        attn_encoder_config chk = mc;
        chk.vocab_size = 4, chk.classes = 2; /* set from the data; the rest checked here */
        st = attn_encoder_config_check(&chk);
        if (!st) st = attn_train_config_check(&tc);
        if (st) return cli_fail("train", st);
    }
    int rc0 = cli_check_out_dir("train", out, resume, force);
    if (rc0) return rc0;
    st = attn_export_check_dir(out); /* created by the first checkpoint */
    attn_cls_trainer *t = NULL;
    if (!st) st = resume ? attn_cls_trainer_resume(&t, resume, data, iters)
                         : attn_cls_trainer_create(&t, &mc, &tc, &co, data);
    if (st) return cli_fail("train", st);
    const attn_cls_info *in = attn_cls_trainer_info(t);
    cli_progress p;
    memset(&p, 0, sizeof p);
    p.tty = isatty(fileno(stdout)), p.log_every = log_every, p.first_step = in->step;
    /* texts per step on average: an epoch's steps cover the training set once */
    p.unit = "texts", p.per_step = (double)in->n_train / (double)(in->steps_per_epoch ? in->steps_per_epoch : 1);
    if (json_log && !(p.json = fopen(json_log, resume ? "a" : "w"))) {
        st = attn_error(ATTN_E_IO, "%s: cannot open for writing: %s", json_log, strerror(errno));
        attn_cls_trainer_free(t);
        return cli_fail("train", st);
    }
    const attn_encoder_config *m = &in->model;
    printf("attn train --task classify: %zu train, %zu validation, %zu test texts (%.1f words "
           "on average), %zu classes, vocabulary %zu\n"
           "encoder: %zu parameters (%zu layers, %zu heads, width %zu, context %zu, %s pooling%s), "
           "batch %zu, %zu steps per epoch, %s step %zu of %zu\n",
           in->n_train, in->n_valid, in->n_test, in->mean_words, m->classes, m->vocab_size,
           attn_encoder_num_params(attn_cls_trainer_model(t)), m->layers, m->heads, m->width,
           m->context, m->pooling == ATTN_POOL_CLS ? "[CLS]" : "mean", m->bias ? ", biases" : "",
           in->train.batch, in->steps_per_epoch, resume ? "resuming at" : "from", in->step,
           in->train.iters);
    printf("(batches group texts of similar length, so steps differ in time; texts/s and ms/step\n"
           " are means over the last %d steps)\n", CLI_RATE_WINDOW);
    fflush(stdout);
    cli_signals old;
    cli_catch_stop_signals(&old);
    int stopped = 0;
    st = attn_cls_trainer_run(t, out, stop_at, &cli_interrupted, on_progress, &p, &stopped);
    cli_restore_stop_signals(&old);
    if (p.tty) printf("\n");
    if (!st && stopped == 1) {
        printf("stopped at step %zu of %zu%s; checkpoint in %s (continue with --resume %s)\n", in->step,
               in->train.iters, cli_interrupted ? " (interrupted)" : "", out, out);
    } else if (!st) {
        if (stopped == 2)
            printf("early stop at step %zu: no better validation accuracy in %zu evaluations\n", in->step,
                   in->bad_evals);
        printf("done: step %zu; best validation accuracy %.4f (macro-F1 %.4f) at step %zu; checkpoint in %s\n",
               in->step, in->best_accuracy, in->best_f1, in->best_step, out);
        st = report(t, out, baselines, p.json);
    }
    if (p.json && fclose(p.json) != 0 && !st) st = attn_error(ATTN_E_IO, "%s: cannot write the log", json_log);
    attn_cls_trainer_free(t);
    if (st) return cli_fail("train", st);
    return cli_finish_stdout("train");
}
