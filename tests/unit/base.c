/* base.c -- unit tests for the arena, the growable buffer and error names. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"
#include "tap.h"

static void test_arena(void)
{
    arena *a = arena_new(64);
    ok(a != NULL, "arena_new");
    char *p = arena_alloc(a, 10);
    ok(((uintptr_t)p & 15) == 0, "allocations are 16-byte aligned");
    memset(p, 'x', 10);
    /* Force several new blocks, including one larger than the doubling size. */
    char *big = arena_alloc(a, 100000);
    ok(big != NULL, "large allocation beyond the first block");
    memset(big, 1, 100000);
    ok(p[9] == 'x', "earlier allocation survives block chaining");
    char *s = arena_strndup(a, "hello world", 5);
    is_str(s, "hello", "strndup copies n bytes and terminates");
    int *z = arena_zalloc(a, 64 * sizeof(int));
    int allzero = 1;
    for (int i = 0; i < 64; i++)
        allzero &= z[i] == 0;
    ok(allzero, "zalloc zero-fills");
    char *r = arena_alloc(a, 8);
    memcpy(r, "abcdefg", 8);
    char *r2 = arena_realloc(a, r, 8, 24);
    ok(r2 == r, "realloc of the last allocation grows in place");
    is_str(r2, "abcdefg", "realloc keeps the contents");
    char *other = arena_alloc(a, 4);
    (void)other;
    char *r3 = arena_realloc(a, r2, 24, 48);
    ok(r3 != r2 && strcmp(r3, "abcdefg") == 0, "realloc of an older allocation copies");
    ok(arena_used(a) >= 100000, "arena_used counts handed-out bytes");
    arena_reset(a);
    is_int(arena_used(a), 0, "reset forgets everything");
    ok(arena_alloc(a, 32) != NULL, "allocation after reset");
    arena_free(a);
}

static void test_buf(void)
{
    buf b = BUF_INIT;
    is_str(buf_cstr(&b), "", "empty buffer reads as empty string");
    buf_puts(&b, "abc");
    buf_putc(&b, '-');
    buf_put_u64(&b, 18446744073709551615ull);
    buf_putc(&b, ' ');
    buf_put_i64(&b, INT64_MIN);
    is_str(buf_cstr(&b), "abc-18446744073709551615 -9223372036854775808", "puts/putc/integers");
    buf_reset(&b);
    buf_printf(&b, "%s=%d", "n", 42);
    is_str(buf_cstr(&b), "n=42", "printf after reset");
    for (int i = 0; i < 10000; i++)
        buf_put(&b, "0123456789", 10);
    is_int(b.len, 4 + 100000, "growth keeps every byte");
    is_int(b.err, 0, "no error while growing");
    size_t n;
    char *d = buf_detach(&b, &n);
    ok(d && n == 100004 && b.data == NULL, "detach hands over the block");
    free(d);

    buf l = BUF_INIT;
    l.limit = 8;
    buf_puts(&l, "12345");
    buf_puts(&l, "67890");
    is_int(l.err, ERR_TOOBIG, "limit sets a sticky ERR_TOOBIG");
    buf_puts(&l, "x");
    is_str(buf_cstr(&l), "12345", "writes after an error are dropped");
    ok(buf_detach(&l, NULL) == NULL, "detach after an error yields NULL");
}

int main(void)
{
    test_arena();
    test_buf();
    is_str(err_str(ERR_CONFLICT), "version conflict", "err_str names codes");
    is_str(err_str(12345), "unknown error", "err_str on an unknown code");
    return tap_done();
}
