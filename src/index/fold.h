/*
 * fold.h -- the generated search-folding table (fold_gen.c, tools/gen_fold.py):
 * code points of Latin, Greek and Cyrillic letters that a search compares as
 * another string ("Ö" -> "o", "ß" -> "ss", "Σ" -> "σ"), sorted by code point.
 */
#ifndef HORTUS_INDEX_FOLD_H
#define HORTUS_INDEX_FOLD_H

typedef struct idx_fold_row {
    unsigned cp;
    const char *to; /* UTF-8, NUL-terminated */
} idx_fold_row;

extern const idx_fold_row idx_fold_rows[];
extern const unsigned idx_fold_nrows;

#endif
