/* attn/tokenizer.h - text to token ids and back, behind one interface.
 *
 * A model sees only ids below vocab_size; which tokenizer made them is the
 * tokenizer's business. Character level now (the vocabulary is the set of
 * Unicode code points of the training text, sorted, as nanoGPT's
 * shakespeare_char), word level, and GPT-2's byte-level BPE. A tokenizer is saved as one JSON file whose "type"
 * names the implementation; attn_tokenizer_load dispatches on it.
 */
#ifndef ATTN_TOKENIZER_H
#define ATTN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_tokenizer attn_tokenizer;

typedef struct attn_tokenizer_vtable {
    const char *type;
    size_t (*vocab_size)(const attn_tokenizer *t);
    /* ids: a new malloc'd array of *n ids (free it); errors name the
     * position of what cannot be encoded. `what` names the text in messages. */
    attn_status (*encode)(const attn_tokenizer *t, const char *text, size_t len,
                          const char *what, uint32_t **ids, size_t *n);
    /* The bytes of one token: *len bytes at *bytes, valid while t lives. */
    attn_status (*token_bytes)(const attn_tokenizer *t, uint32_t id, const char **bytes,
                               size_t *len);
    /* Writes the tokenizer's JSON (atomically). */
    attn_status (*save)(const attn_tokenizer *t, const char *path);
    void (*destroy)(attn_tokenizer *t);
} attn_tokenizer_vtable;

struct attn_tokenizer {
    const attn_tokenizer_vtable *vt;
};

static inline size_t attn_tokenizer_vocab_size(const attn_tokenizer *t) { return t->vt->vocab_size(t); }

attn_status attn_tokenizer_encode(const attn_tokenizer *t, const char *text, size_t len,
                                  const char *what, uint32_t **ids, size_t *n);
attn_status attn_tokenizer_token_bytes(const attn_tokenizer *t, uint32_t id, const char **bytes,
                                       size_t *len);
attn_status attn_tokenizer_save(const attn_tokenizer *t, const char *path);
/* The bytes of ids[0..n) concatenated into a new malloc'd buffer (*len
 * bytes plus a NUL); an id out of range is an error naming its position in
 * `what`. */
attn_status attn_tokenizer_decode(const attn_tokenizer *t, const uint32_t *ids, size_t n,
                                  const char *what, char **bytes, size_t *len);
/* Each token of ids[0..n) as its own text, for labels: a malloc'd array of
 * n malloc'd strings (free with attn_tokenizer_labels_free), each the
 * token's bytes made valid UTF-8 (a byte that is not part of a valid
 * sequence, as in half of a character BPE split, becomes U+FFFD; NUL too). */
attn_status attn_tokenizer_labels(const attn_tokenizer *t, const uint32_t *ids, size_t n,
                                  char ***labels);
void attn_tokenizer_labels_free(char **labels, size_t n);
void attn_tokenizer_free(attn_tokenizer *t);
/* Reads a tokenizer file written by save (any known type). */
attn_status attn_tokenizer_load(attn_tokenizer **t, const char *path);

/* Character level: the vocabulary of `text` (valid UTF-8, not empty). */
attn_status attn_char_tokenizer_from_text(attn_tokenizer **t, const char *text, size_t len,
                                          const char *what);

/* Word level: a word is a maximal run of ASCII letters and digits (bytes of
 * UTF-8 sequences, >= 0x80, count as letters), lower-cased; everything else
 * separates words. Ids: 0 [PAD], 1 [CLS], 2 [UNK], then the words seen at
 * least min_count times in the texts, most frequent first (ties in byte
 * order). Encoding never fails: a word not in the vocabulary is [UNK]. */
#define ATTN_WORD_PAD 0u
#define ATTN_WORD_CLS 1u
#define ATTN_WORD_UNK 2u
attn_status attn_word_tokenizer_build(attn_tokenizer **t, const char *const *texts, size_t n,
                                      size_t min_count);

/* GPT-2's byte-level BPE (OpenAI's encoder.py, tiktoken's "gpt2"): the
 * pre-tokenizer's pattern through PCRE2 with \s as Unicode White_Space, the
 * byte-to-unicode map, merges by rank, a cache of split words. Any bytes
 * encode, and decoding gives them back exactly: bytes that are not valid
 * UTF-8 cannot be matched as characters, so each maximal run of them is a
 * piece of its own and the valid text around it is pre-tokenized apart.
 * Encoding keeps a cache inside the tokenizer: one tokenizer per thread. */

/* Reads dir/encoder.json + dir/vocab.bpe (or Hugging Face's names
 * vocab.json + merges.txt), checking that they agree. */
attn_status attn_bpe_tokenizer_load(attn_tokenizer **t, const char *dir);
/* Writes dir/encoder.json and dir/vocab.bpe (each atomically). */
attn_status attn_bpe_tokenizer_save_dir(const attn_tokenizer *t, const char *dir);
int attn_tokenizer_is_bpe(const attn_tokenizer *t);
/* on: "<|endoftext|>" in the text encodes as its one id (off by default:
 * it is ordinary text, as in encoder.py). Fails if the vocabulary lacks it. */
attn_status attn_bpe_set_special(attn_tokenizer *t, int on);

/* Trains a byte-level BPE of vocab_size tokens (>= 257: the 256 bytes in
 * GPT-2's order, the merges, then "<|endoftext|>") on text with GPT-2's
 * pre-tokenizer: each step merges the adjacent pair that occurs most often
 * within the pieces (ties: the pair of lower ids). Stops early, with a
 * smaller vocabulary, when no pair occurs twice. progress (may be NULL) is
 * called after each merge with the count so far. */
attn_status attn_bpe_train(attn_tokenizer **t, const char *text, size_t len, const char *what,
                           size_t vocab_size, void (*progress)(size_t done, size_t total, void *user),
                           void *user);

#ifdef __cplusplus
}
#endif
#endif
