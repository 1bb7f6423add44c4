/* ckpt_dir.h - the checkpoint directory every model's checkpoints share
 * (gpt_checkpoint.c, cls_checkpoint.c): a checkpoint changes from one
 * complete state to the next in one atomic step, and every file is stamped
 * with its model, run and step so that readers refuse files that do not
 * belong together.
 *
 *   DIR/config.json -> .steps/current/config.json   (one link per file, made once)
 *   DIR/.steps/current -> step-000066               (the pointer: the commit)
 *   DIR/.steps/step-000066/   config.json vocab.json model.safetensors ...
 *   DIR/.steps/step-000065/   the state before (the last two are kept)
 *
 * A save writes every file into a fresh DIR/.steps/tmp-* directory (each file
 * fsynced), fsyncs it, renames it to step-N, fsyncs .steps, and then
 * replaces the `current` symlink by rename(2) and fsyncs again: a crash at
 * any moment leaves `current` naming the old state or the new one, both
 * complete. Directories of killed saves are removed by the next save.
 * One process at a time writes a directory (ckpt_lock).
 * Readers resolve `current` once and read every file from that state; a
 * directory without .steps (the flat layout attn wrote before) is read as
 * it is. */
#ifndef ATTN_CKPT_DIR_H
#define ATTN_CKPT_DIR_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "attn/rng.h"
#include "attn/status.h"
#include "attn/train.h"

/* ---- the directory ---------------------------------------------------------- */

/* A save in progress: write the files to ckpt_path(w->tmp, name) (see
 * ckpt_paths). */
typedef struct ckpt_txn {
    char *dir;   /* the checkpoint directory */
    char *steps; /* dir/.steps */
    char *tmp;   /* dir/.steps/tmp-*, private until the commit */
} ckpt_txn;

/* Creates dir (one level, when missing), dir/.steps and a fresh temporary
 * state directory in it, after ckpt_lock(dir, 1). */
attn_status ckpt_begin(ckpt_txn *w, const char *dir);
/* One writer per directory: an exclusive flock(2) on dir/.steps, held until
 * the process ends (the kernel releases it then, even after kill -9).
 * Another process holding it: ATTN_E_INVALID naming dir; this
 * process holding it: ATTN_OK. create: make dir and dir/.steps first;
 * otherwise a dir without .steps is left alone (nothing to lock yet). Trainers
 * call it before their first step, so a second run on the same directory is
 * refused at once rather than at its first save. */
attn_status ckpt_lock(const char *dir, int create);
/* The same file of the committed state of checkpoint directory `from` (often
 * w->dir itself), hard-linked into the new state (copied where links fail):
 * for files a save keeps unchanged. */
attn_status ckpt_carry(ckpt_txn *w, const char *from, const char *name);
/* When st is ATTN_OK: makes the temporary state the current one under the
 * name step-<step>, links dir/<names[i]> to it, and removes every state but
 * this one and the one before. Otherwise removes the temporary state. Frees
 * w either way; returns st or the commit's own error. */
attn_status ckpt_commit(ckpt_txn *w, attn_status st, size_t step, const char *const *names,
                        size_t n);

/* The directory holding dir's committed state (malloc'd): dir/.steps/<the
 * target of current>, or dir itself for the flat layout. */
attn_status ckpt_state(const char *dir, char **state);
/* dir/name, malloc'd (NULL when out of memory). */
char *ckpt_path(const char *dir, const char *name);
/* ckpt_path(dir, names[i]) for i < n into paths (free each; on failure none
 * is left allocated). */
attn_status ckpt_paths(const char *dir, const char *const *names, size_t n, char **paths);

/* ---- files ---------------------------------------------------------------- */

/* What each file of a checkpoint records and readers check: the model
 * ("attn-gpt", "attn-encoder"), the run (CKPT_RUN_LEN hex digits; "" for
 * files written before runs were recorded; NULL: not checked on reading,
 * none written) and the step. */
#define CKPT_RUN_LEN 16
typedef struct ckpt_stamp {
    const char *format, *run;
    size_t step;
} ckpt_stamp;

/* A text file (config.json), atomically. */
attn_status ckpt_text_write(const char *path, const char *text);
/* Parameters by name (F32) and the stamp as metadata. */
attn_status ckpt_params_write(const char *path, const ckpt_stamp *s, const attn_param_ref *p,
                              size_t n);
/* Checks the stamp and every parameter's shape (strict: and no other tensor)
 * before loading any. */
attn_status ckpt_params_read(const char *path, const ckpt_stamp *s, const attn_param_ref *p,
                             size_t n, int strict);
/* AdamW moments "m.<name>", "v.<name>", its step count and an RNG state. */
attn_status ckpt_optim_write(const char *path, const ckpt_stamp *s, const attn_param_ref *p,
                             size_t n, attn_adamw *opt, const attn_rng *rng);
attn_status ckpt_optim_read(const char *path, const ckpt_stamp *s, const attn_param_ref *p,
                            size_t n, attn_adamw *opt, attn_rng *rng);

/* ---- the run ------------------------------------------------------------------ */

/* A run is named by a hash of what decides its bits (the model, its
 * configuration, the training data): two runs with the same name compute the
 * same weights (training is deterministic), so files of different runs are
 * never mixed, while a resumed or repeated run still writes byte-identical
 * files. Not cryptographic: it names, it does not authenticate. A run
 * resumed from a checkpoint written before runs were recorded continues
 * without a name (its files, carried ones included, then agree). */
typedef struct ckpt_hash {
    uint64_t h;
} ckpt_hash;
void ckpt_hash_init(ckpt_hash *h, const char *format);
void ckpt_hash_add(ckpt_hash *h, const void *data, size_t len);
void ckpt_hash_hex(const ckpt_hash *h, char run[CKPT_RUN_LEN + 1]);
/* What every config.json begins with: "format" (must be `format`; `hint`
 * follows the message otherwise), "version" (must be `version`), "step" (a
 * whole number) and "run" (CKPT_RUN_LEN lowercase hex digits, or absent:
 * run[0] = 0, a checkpoint from before runs were recorded). */
attn_status ckpt_config_head(const cJSON *root, const char *path, const char *format,
                             const char *hint, int version, size_t *step,
                             char run[CKPT_RUN_LEN + 1]);

/* The GPT trainer's run: its configuration at step 0 and its text. */
attn_status gpt_checkpoint_name_run(attn_checkpoint *info, const char *text, size_t len);

#endif
