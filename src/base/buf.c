/* buf.c -- growable byte buffer; see buf.h. */
#include "base/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

void buf_init(buf *b)
{
    memset(b, 0, sizeof *b);
}

void buf_free(buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}

void buf_reset(buf *b)
{
    b->len = 0;
    b->err = 0;
    if (b->data)
        b->data[0] = 0;
}

int buf_reserve(buf *b, size_t extra)
{
    if (b->err)
        return b->err;
    size_t need = b->len + extra + 1; /* +1 keeps room for the NUL */
    if (need < b->len) {
        b->err = ERR_NOMEM;
        return b->err;
    }
    if (b->limit && b->len + extra > b->limit) {
        b->err = ERR_TOOBIG;
        return b->err;
    }
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->err = ERR_NOMEM;
        return b->err;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void buf_put(buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void buf_puts(buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

void buf_putc(buf *b, char c)
{
    if (buf_reserve(b, 1))
        return;
    b->data[b->len++] = c;
    b->data[b->len] = 0;
}

void buf_put_u64(buf *b, uint64_t v)
{
    char tmp[24];
    int i = 24;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_put(b, tmp + i, (size_t)(24 - i));
}

void buf_put_i64(buf *b, int64_t v)
{
    if (v < 0) {
        buf_putc(b, '-');
        buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        buf_put_u64(b, (uint64_t)v);
    }
}

void buf_vprintf(buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        if (!b->err)
            b->err = ERR_INVALID;
        return;
    }
    if (buf_reserve(b, (size_t)n))
        return;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

const char *buf_cstr(const buf *b)
{
    return b->data ? b->data : "";
}

char *buf_detach(buf *b, size_t *len)
{
    char *p = b->err ? NULL : b->data;
    if (len)
        *len = p ? b->len : 0;
    if (!p)
        free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->err = 0;
    return p;
}
