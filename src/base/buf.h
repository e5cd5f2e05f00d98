/*
 * buf.h -- growable byte buffer with a sticky error flag (SQLite's JsonString).
 *
 * Writers append without checking each call; an allocation failure sets b->err
 * (ERR_NOMEM), later appends become no-ops, and the caller checks once at the end.
 * The bytes are heap memory owned by the buf; buf_free() releases them, and
 * buf_detach() hands them to the caller.
 *
 *   data: [ .... len bytes .... | spare up to cap ]
 *
 * data is always NUL-terminated past len once anything has been written (the NUL
 * is not counted in len), so buf_cstr() is free.
 */
#ifndef HORTUS_BUF_H
#define HORTUS_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    char *data; /* NULL until first write */
    size_t len;
    size_t cap;
    int err; /* 0, or the first error code (ERR_NOMEM / ERR_TOOBIG) */
    size_t limit; /* 0 = unlimited; writing past it sets err = ERR_TOOBIG */
} buf;

#define BUF_INIT {0}

void buf_init(buf *b);
void buf_free(buf *b);
/* Forget the contents, keep the memory and clear the error. */
void buf_reset(buf *b);
/* Make room for `extra` more bytes; returns 0 or the sticky error. */
int buf_reserve(buf *b, size_t extra);

void buf_put(buf *b, const void *p, size_t n);
void buf_puts(buf *b, const char *s);
void buf_putc(buf *b, char c);
void buf_put_u64(buf *b, uint64_t v);
void buf_put_i64(buf *b, int64_t v);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf *b, const char *fmt, va_list ap);

/* The contents as a C string ("" when empty); valid until the next write or free. */
const char *buf_cstr(const buf *b);

/* Hand the heap block to the caller (who must free() it); the buf becomes empty.
 * Returns NULL when nothing was written or after an error. */
char *buf_detach(buf *b, size_t *len);

#endif
