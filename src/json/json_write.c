/*
 * json_write.c -- serialising json_val trees and the jw streaming writer.
 *
 * Output format (the same as JavaScript's JSON.stringify(v) and
 * JSON.stringify(v, null, 2), so fixtures can be produced by any tool):
 *
 *   minified: {"a":[1,"x"],"b":{}}
 *   pretty:   {
 *               "a": [
 *                 1,
 *                 "x"
 *               ],
 *               "b": {}
 *             }
 *
 * No trailing newline; empty containers stay "{}" / "[]" on one line. Numbers are
 * written as their raw text. Strings escape '"', '\\' and control characters
 * (\b \f \n \r \t, else \u00XX); everything else, including non-ASCII UTF-8,
 * is copied as is.
 *
 * The writer appends straight into buf's memory when it has room (buf functions
 * live in another translation unit, so a call per token would dominate) and falls
 * back to buf_put() to grow; buf's sticky error makes every later write a no-op.
 *
 * jw keeps, per open level, one byte in w->first[]: bit 0 = nothing written yet
 * at this level, bit 1 = the level is an array (so jw_end knows which bracket).
 */
#include <string.h>

#include "base/err.h"
#include "json/json.h"

#define LVL_FIRST 1u
#define LVL_ARRAY 2u

/* Room for n more bytes plus the NUL, within the buffer's limit: the fast path may
 * write directly; otherwise buf_put() grows the buffer or records the error. */
static inline int has_room(const buf *b, size_t n)
{
    return !b->err && b->cap - b->len > n && (!b->limit || b->limit - b->len >= n);
}

static inline void put(buf *b, const void *p, size_t n)
{
    if (has_room(b, n)) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;
    } else {
        buf_put(b, p, n);
    }
}

static inline void putch(buf *b, char c)
{
    if (has_room(b, 1)) {
        b->data[b->len++] = c;
        b->data[b->len] = 0;
    } else {
        buf_putc(b, c);
    }
}

static void newline_indent(buf *b, int level)
{
    static const char spaces[] = "\n                                                          "
                                 "                                                          ";
    size_t n = (size_t)level * 2;
    put(b, spaces, 1);
    while (n > 0) {
        size_t k = n < sizeof spaces - 2 ? n : sizeof spaces - 2;
        put(b, spaces + 1, k);
        n -= k;
    }
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Non-zero when the word holds a byte < 0x20, '"' or '\\'; the lowest flagged
 * byte is a true hit. */
static inline uint64_t escape_mask(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
    return (((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS;
}

static inline int needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

void json_write_string(buf *b, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (n == 0) { /* also covers str == NULL */
        put(b, "\"\"", 2);
        return;
    }
    const unsigned char *s = (const unsigned char *)str, *end = s + n, *run = s;
    putch(b, '"');
    for (;;) {
        while (end - s >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            uint64_t m = escape_mask(w);
            if (m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                s += __builtin_ctzll(m) >> 3;
#else
                while (!needs_escape(*s))
                    s++;
#endif
                goto special;
            }
            s += 8;
        }
        while (s < end && !needs_escape(*s))
            s++;
        if (s >= end)
            break;
    special:
        put(b, run, (size_t)(s - run));
        char e[6] = {'\\', 0, '0', '0', 0, 0};
        size_t elen = 2;
        switch (*s) {
        case '"':
            e[1] = '"';
            break;
        case '\\':
            e[1] = '\\';
            break;
        case '\b':
            e[1] = 'b';
            break;
        case '\f':
            e[1] = 'f';
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\r':
            e[1] = 'r';
            break;
        case '\t':
            e[1] = 't';
            break;
        default:
            e[1] = 'u';
            e[4] = hex[*s >> 4];
            e[5] = hex[*s & 15];
            elen = 6;
        }
        put(b, e, elen);
        s++;
        run = s;
    }
    put(b, run, (size_t)(s - run));
    putch(b, '"');
}

/* level: indentation level of v itself (pretty only). */
static void write_val(buf *b, const json_val *v, int pretty, int level)
{
    switch (v->type) {
    case JSON_NULL:
        put(b, "null", 4);
        return;
    case JSON_FALSE:
        put(b, "false", 5);
        return;
    case JSON_TRUE:
        put(b, "true", 4);
        return;
    case JSON_NUMBER:
        put(b, v->u.s, v->n);
        return;
    case JSON_STRING:
        json_write_string(b, v->u.s, v->n);
        return;
    case JSON_ARRAY:
        putch(b, '[');
        for (uint32_t i = 0; i < v->n; i++) {
            if (i)
                putch(b, ',');
            if (pretty)
                newline_indent(b, level + 1);
            write_val(b, &v->u.items[i], pretty, level + 1);
        }
        if (pretty && v->n)
            newline_indent(b, level);
        putch(b, ']');
        return;
    case JSON_OBJECT:
        putch(b, '{');
        for (uint32_t i = 0; i < v->n; i++) {
            const json_member *m = &v->u.members[i];
            if (i)
                putch(b, ',');
            if (pretty)
                newline_indent(b, level + 1);
            json_write_string(b, m->key, m->key_len);
            if (pretty)
                put(b, ": ", 2);
            else
                putch(b, ':');
            write_val(b, &m->val, pretty, level + 1);
        }
        if (pretty && v->n)
            newline_indent(b, level);
        putch(b, '}');
        return;
    }
    if (!b->err)
        b->err = ERR_INVALID; /* not a json_type: a corrupted tree */
}

void json_write(buf *b, const json_val *v, int pretty)
{
    write_val(b, v, pretty, 0);
}

/* ---- jw ------------------------------------------------------------------------ */

void jw_init(jw *w, buf *b, int pretty)
{
    memset(w, 0, sizeof *w);
    w->b = b;
    w->pretty = pretty;
    w->first[0] = LVL_FIRST;
}

/* Separator before a value or key at the current level. */
static void before_item(jw *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth == 0)
        return;
    if (!(w->first[w->depth] & LVL_FIRST))
        putch(w->b, ',');
    w->first[w->depth] &= (uint8_t)~LVL_FIRST;
    if (w->pretty)
        newline_indent(w->b, w->depth);
}

static void open_level(jw *w, char c, uint8_t kind)
{
    before_item(w);
    if (w->depth >= JSON_MAX_DEPTH) {
        if (!w->b->err)
            w->b->err = ERR_TOOBIG;
        return;
    }
    putch(w->b, c);
    w->depth++;
    w->first[w->depth] = LVL_FIRST | kind;
}

void jw_obj(jw *w)
{
    open_level(w, '{', 0);
}

void jw_arr(jw *w)
{
    open_level(w, '[', LVL_ARRAY);
}

void jw_end(jw *w)
{
    if (w->depth == 0) {
        if (!w->b->err)
            w->b->err = ERR_INVALID; /* unbalanced jw_end: a caller bug */
        return;
    }
    uint8_t lv = w->first[w->depth];
    w->depth--;
    w->after_key = 0;
    if (w->pretty && !(lv & LVL_FIRST))
        newline_indent(w->b, w->depth);
    putch(w->b, (lv & LVL_ARRAY) ? ']' : '}');
}

void jw_keyn(jw *w, const char *key, size_t n)
{
    before_item(w);
    json_write_string(w->b, key, n);
    if (w->pretty)
        put(w->b, ": ", 2);
    else
        putch(w->b, ':');
    w->after_key = 1;
}

void jw_key(jw *w, const char *key)
{
    jw_keyn(w, key, strlen(key));
}

void jw_strn(jw *w, const char *s, size_t n)
{
    before_item(w);
    json_write_string(w->b, s, n);
}

void jw_str(jw *w, const char *s)
{
    jw_strn(w, s, strlen(s));
}

void jw_num(jw *w, const char *text, size_t n)
{
    before_item(w);
    put(w->b, text, n);
}

void jw_int(jw *w, int64_t v)
{
    before_item(w);
    buf_put_i64(w->b, v);
}

void jw_bool(jw *w, int v)
{
    before_item(w);
    if (v)
        put(w->b, "true", 4);
    else
        put(w->b, "false", 5);
}

void jw_null(jw *w)
{
    before_item(w);
    put(w->b, "null", 4);
}

void jw_val(jw *w, const json_val *v)
{
    before_item(w);
    write_val(w->b, v, w->pretty, w->depth);
}

void jw_raw(jw *w, const char *json, size_t n)
{
    before_item(w);
    put(w->b, json, n);
}
