/*
 * arena.c -- chained-block bump allocator; see arena.h for the picture.
 */
#include "base/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct block {
    struct block *prev;
    size_t size; /* usable bytes in data[] */
    size_t used;
    _Alignas(16) unsigned char data[];
} block;

struct arena {
    block *cur;
    block *first;
    size_t total; /* bytes handed out since reset */
    void *last;   /* most recent allocation, for arena_realloc in place */
};

#define ALIGN16(n) (((n) + 15u) & ~(size_t)15u)

static block *block_new(size_t size, block *prev)
{
    block *b = malloc(sizeof(block) + size);
    if (!b)
        return NULL;
    b->prev = prev;
    b->size = size;
    b->used = 0;
    return b;
}

arena *arena_new(size_t first)
{
    arena *a = malloc(sizeof *a);
    if (!a)
        return NULL;
    if (first == 0)
        first = 8192;
    a->first = a->cur = block_new(ALIGN16(first), NULL);
    if (!a->cur) {
        free(a);
        return NULL;
    }
    a->total = 0;
    a->last = NULL;
    return a;
}

void arena_free(arena *a)
{
    if (!a)
        return;
    block *b = a->cur;
    while (b) {
        block *p = b->prev;
        free(b);
        b = p;
    }
    free(a);
}

void arena_reset(arena *a)
{
    block *b = a->cur;
    while (b != a->first) {
        block *p = b->prev;
        free(b);
        b = p;
    }
    a->cur = a->first;
    a->first->used = 0;
    a->total = 0;
    a->last = NULL;
}

void *arena_alloc(arena *a, size_t n)
{
    size_t need = ALIGN16(n ? n : 1);
    if (need < n)
        return NULL; /* overflow */
    block *b = a->cur;
    if (b->size - b->used < need) {
        size_t sz = b->size * 2;
        if (sz > ARENA_MAX_BLOCK)
            sz = ARENA_MAX_BLOCK;
        if (sz < need)
            sz = need;
        b = block_new(sz, a->cur);
        if (!b)
            return NULL;
        a->cur = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->total += need;
    a->last = p;
    return p;
}

void *arena_zalloc(arena *a, size_t n)
{
    void *p = arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void *arena_realloc(arena *a, void *p, size_t old_n, size_t new_n)
{
    if (!p)
        return arena_alloc(a, new_n);
    if (new_n <= old_n)
        return p;
    block *b = a->cur;
    if (p == a->last) {
        size_t start = (size_t)((unsigned char *)p - b->data);
        size_t need = ALIGN16(new_n);
        if (need >= new_n && start + need <= b->size) {
            a->total += need - (b->used - start);
            b->used = start + need;
            return p;
        }
    }
    void *q = arena_alloc(a, new_n);
    if (q)
        memcpy(q, p, old_n);
    return q;
}

size_t arena_used(const arena *a)
{
    return a->total;
}
