/* attn/train_config.h - each trainer's hyperparameters, described once.
 *
 * One table per trainer (attn_gpt_hparams, attn_cls_hparams) gives every
 * hyperparameter's name, type, place (a field of one of the trainer's
 * configuration structs), default, range and help. From it come the CLI's
 * flags (--name with '_' written '-') and its --help, the --config file (a
 * JSON object of the same keys), the config.json of checkpoints and the
 * range checks, so the four never disagree.
 *
 * Numbers are written as the user gave them: the shortest decimal that reads
 * back to the same float ("0.001", not "0.0010000000474974513"). */
#ifndef ATTN_TRAIN_CONFIG_H
#define ATTN_TRAIN_CONFIG_H

#include <stddef.h>
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_hp_type {
    ATTN_HP_SIZE,   /* size_t, a whole number */
    ATTN_HP_U64,    /* uint64_t (a seed) */
    ATTN_HP_FLOAT,  /* float */
    ATTN_HP_BOOL,   /* int 0/1; flags --name and --no-name */
    ATTN_HP_CHOICE  /* an enum stored as int: the index into choices ("mean|cls") */
} attn_hp_type;

enum {
    ATTN_HP_LO_OPEN = 1,    /* the range excludes lo */
    ATTN_HP_HI_OPEN = 2,    /* ... and hi */
    ATTN_HP_RESUMABLE = 4,  /* may be given again when resuming (iters) */
    ATTN_HP_DATA = 8,       /* set from the data (vocab_size): no flag, no --config */
    ATTN_HP_HIDDEN = 16     /* kept in config.json only (the trainer ignores it) */
};

typedef struct attn_hparam {
    const char *name;    /* JSON key; the flag is --name with '_' as '-' */
    attn_hp_type type;
    int part;            /* which struct: an index into the trainer's parts */
    size_t offset;       /* of the field in that struct */
    double def, lo, hi;  /* default; range [lo, hi] (see the flags) */
    unsigned flags;
    const char *arg;     /* the value's name in --help: N, X, P; choices for CHOICE */
    const char *section; /* --help heading: "model", "training", ... */
    const char *help;    /* lines separated by '\n' */
} attn_hparam;

typedef struct attn_hparams {
    const char *trainer;          /* "gpt", "classify" */
    const attn_hparam *p;
    size_t n;
    size_t n_parts;
    const char *const *part_names; /* config.json's objects: "model", "train", ... */
} attn_hparams;

/* The GPT's: parts attn_gpt_config ("model") and attn_train_config ("train"). */
const attn_hparams *attn_gpt_hparams(void);
/* The encoder classifier's: attn_encoder_config ("model"), attn_train_config
 * ("train") and attn_cls_opts ("classify"). */
const attn_hparams *attn_cls_hparams(void);

/* Sets every field the table describes to its default. parts[i] points to
 * the struct of part i. */
void attn_hparams_defaults(const attn_hparams *h, void *const *parts);
/* The entry of a key ("min_lr") or flag name ("min-lr"), or NULL. */
const attn_hparam *attn_hparam_find(const attn_hparams *h, const char *name);
/* The entry's flag name without the dashes ("min-lr"), in buf (n >= 40). */
char *attn_hparam_flag(const attn_hparam *p, char *buf, size_t n);
/* Sets one entry from text (a flag's value): the whole text a number of the
 * entry's type within its range, or one of its choices. ATTN_E_INVALID
 * otherwise, "--min-lr: expected a number >= 0, found 'x'". */
attn_status attn_hparam_parse(const attn_hparam *p, void *const *parts, const char *text);
/* The entry's range in words, e.g. "an integer in [1, 4096]"; buf n >= 96. */
char *attn_hparam_expects(const attn_hparam *p, char *buf, size_t n);
/* The value of an entry as JSON text ("0.001", "true", "\"mean\""); n >= 32. */
char *attn_hparam_format(const attn_hparam *p, void *const *parts, char *buf, size_t n);

/* Reads a JSON object of keys (flat, or grouped in objects named as the
 * parts, as in config.json). Only keys present are written. Unknown keys,
 * wrong types and values out of range are ATTN_E_FORMAT errors naming `what`
 * and the key. Other keys of the top level listed in `ignore` (NULL-ended;
 * may be NULL) are skipped. */
attn_status attn_hparams_from_json(const attn_hparams *h, void *const *parts, const char *json,
                                   const char *what, const char *const *ignore);
/* Every entry as {"<part>": {"key": value, ...}, ...} (malloc'd compact text). */
attn_status attn_hparams_to_json(const attn_hparams *h, void *const *parts, char **json);
/* Every entry within its range (ATTN_E_INVALID naming the key). */
attn_status attn_hparams_check(const attn_hparams *h, void *const *parts);

/* The shortest "%.*g" text of v (finite) that strtof and strtod-then-float
 * both read back as v, in buf (n >= 32). Returns buf. */
char *attn_float_shortest(char *buf, size_t n, float v);

#ifdef __cplusplus
}
#endif
#endif
