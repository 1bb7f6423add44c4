/* seed_example.c - the built-in example of docs/seed.md.
 *
 * Four named dimensions. "mouse" is as much animal as tech: on its own it is
 * ambiguous. "cat" is strongly animal, "keyboard" strongly tech, "and" and
 * "are" mostly grammar, "friends" and "useful" weakly informative (mostly
 * sentiment). Self-attention pulls mouse towards its context: more animal
 * next to cat, more tech next to keyboard. tests/test_demo.c asserts it.
 */
#include "attn/selfattn.h"

static const char *const seed_dims[] = {"animal", "tech", "grammar", "sentiment"};

static const char *const seed_words[] = {"cat", "keyboard", "mouse", "and",
                                         "are", "friends", "useful"};

/* (7 words, 4 dims) */
static const float seed_vectors[] = {
    /*            animal  tech  grammar sentiment */
    /* cat      */ 2.0f, 0.0f, 0.2f, 0.4f,
    /* keyboard */ 0.0f, 2.0f, 0.2f, 0.1f,
    /* mouse    */ 1.5f, 1.5f, 0.2f, 0.2f,
    /* and      */ 0.0f, 0.0f, 1.5f, 0.0f,
    /* are      */ 0.0f, 0.0f, 1.4f, 0.1f,
    /* friends  */ 0.3f, 0.0f, 0.3f, 1.2f,
    /* useful   */ 0.0f, 0.3f, 0.3f, 1.0f,
};

static const char *const seed_sentences[] = {
    "cat and mouse are friends",
    "keyboard and mouse are useful",
};

attn_status attn_seed_vocabulary(attn_embeddings *vocab)
{
    return attn_embeddings_from_arrays(vocab, sizeof seed_words / sizeof *seed_words, seed_words,
                                       sizeof seed_dims / sizeof *seed_dims, seed_dims,
                                       seed_vectors);
}

size_t attn_seed_sentence_count(void) { return sizeof seed_sentences / sizeof *seed_sentences; }

const char *attn_seed_sentence(size_t i)
{
    return i < attn_seed_sentence_count() ? seed_sentences[i] : NULL;
}

const char *attn_seed_focus_word(void) { return "mouse"; }
