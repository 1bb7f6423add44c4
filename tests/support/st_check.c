/* st_check.c - helpers of the safetensors and atomic-file tests. */
#include "st_check.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attn/status.h"

uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* 8-byte little-endian length, the header as given, then the data. */
unsigned char *make_st(const char *header, const void *data, size_t dlen, size_t *size)
{
    size_t hlen = strlen(header);
    unsigned char *b = malloc(8 + hlen + dlen + 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, header, hlen);
    if (dlen) memcpy(b + 8 + hlen, data, dlen);
    *size = 8 + hlen + dlen;
    return b;
}

/* The message is one line that starts with the file name. */
void assert_one_line(const char *file)
{
    const char *msg = attn_last_error();
    if (strchr(msg, '\n')) fail_msg("message has a newline: %s", msg);
    if (strncmp(msg, file, strlen(file)) != 0 || msg[strlen(file)] != ':')
        fail_msg("message does not start with '%s:': %s", file, msg);
}

void assert_msg_has(const char *words)
{
    if (!strstr(attn_last_error(), words))
        fail_msg("expected '%s' in: %s", words, attn_last_error());
}

size_t count_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* A fresh empty directory under the test tmpdir. */
const char *fresh_dir(const char *name)
{
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 512, "%.300s/%.100s", test_tmpdir(), name);
    assert_int_equal(mkdir(p, 0755), 0);
    return p;
}

char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *b = malloc(1 << 16);
    assert_non_null(b);
    *n = fread(b, 1, 1 << 16, f);
    fclose(f);
    return b;
}
