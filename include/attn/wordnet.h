/* attn/wordnet.h - a labelled data set from WordNet's nouns.
 *
 * One example per noun synset of data.noun (WordNet's documented format,
 * wndb(5WN)): the text is the synset's words (underscores as spaces, joined by
 * ", "), then ": ", then its gloss (examples included); the label is its
 * lexicographer file (noun.animal, noun.artifact, ...: 26 classes). The split
 * is fixed by the synset: CRC-32 of the 8-digit offset as written in the file,
 * mod 10: 0 test, 1 validation, otherwise train. The output directory gets
 * train.tsv, valid.tsv and test.tsv, one "label<TAB>text" line per example.
 */
#ifndef ATTN_WORDNET_H
#define ATTN_WORDNET_H

#include <stddef.h>
#include <stdint.h>
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where Debian's wordnet-base puts the noun data. */
#define ATTN_WORDNET_NOUNS "/usr/share/wordnet/data.noun"

/* CRC-32 with the zlib/IEEE polynomial (reflected 0xEDB88320, initial and
 * final xor 0xFFFFFFFF): crc32("123456789") = 0xCBF43926. */
uint32_t attn_crc32(const void *data, size_t len);

/* The lexicographer file of number n (lexnames(5WN): 0..44), or NULL. */
const char *attn_lexname(int n);

typedef enum attn_split { ATTN_SPLIT_TRAIN = 0, ATTN_SPLIT_VALID = 1, ATTN_SPLIT_TEST = 2 } attn_split;

/* The split of a synset offset string: crc32 mod 10 = 0 test, 1 valid, else train. */
attn_split attn_wordnet_split(const char *offset, size_t len);

typedef struct attn_wordnet_stats {
    size_t synsets;          /* examples written */
    size_t split[3];         /* per attn_split */
    size_t classes;          /* distinct labels */
} attn_wordnet_stats;

/* Reads data.noun at `path` and writes out_dir/{train,valid,test}.tsv
 * (atomically; out_dir must exist). A missing file is ATTN_E_NOTFOUND with a
 * message naming the package (install wordnet-base); a malformed line is
 * ATTN_E_FORMAT naming path:line and what was expected. */
attn_status attn_wordnet_build(const char *path, const char *out_dir, attn_wordnet_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
