/*
 * arena.h -- per-request bump allocator (h2o's mem pool, SQLite's lookaside in spirit).
 *
 * Everything a request parses, evaluates or writes is allocated here and freed at
 * once by arena_free()/arena_reset(). Allocation is a pointer bump inside the
 * current block; a request that outgrows the block chains a new one (doubling, up
 * to ARENA_MAX_BLOCK, or exactly the size asked for when larger).
 *
 *   arena --> [block 3: newest, bump ptr] -> [block 2] -> [block 1 (first, kept by reset)]
 *
 * Not thread-safe: one arena belongs to one thread at a time.
 */
#ifndef HORTUS_ARENA_H
#define HORTUS_ARENA_H

#include <stddef.h>

#define ARENA_MAX_BLOCK (1u << 20) /* growth stops doubling here */

typedef struct arena arena;

/* New arena whose first block holds about `first` bytes (0 = 8 KiB). NULL on OOM. */
arena *arena_new(size_t first);

/* Free every block and the arena itself. NULL is a no-op. */
void arena_free(arena *a);

/* Forget every allocation; keeps the first block for reuse. Pointers die. */
void arena_reset(arena *a);

/* n bytes, 16-byte aligned, uninitialised; NULL on OOM. Valid until reset/free. */
void *arena_alloc(arena *a, size_t n);

/* As arena_alloc, zero-filled. */
void *arena_zalloc(arena *a, size_t n);

/* Copy of s[0..n) plus a NUL terminator; NULL on OOM. */
char *arena_strndup(arena *a, const char *s, size_t n);

/* Grow the most recent allocation `p` (of old_n bytes) to new_n bytes, in place when
 * it is the last thing allocated and fits, else by copying. NULL on OOM. */
void *arena_realloc(arena *a, void *p, size_t old_n, size_t new_n);

/* Bytes handed out since the last reset (for limits and metrics). */
size_t arena_used(const arena *a);

#endif
