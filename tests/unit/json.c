/*
 * tests/unit/json.c -- the JSON parser and writer against their contract (json.h):
 * RFC 8259 acceptance and rejection, FHIR rules, error positions, exact number
 * text, unicode, depth cap, writer output (minified, pretty, jw), tree editing.
 */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "tap.h"
#include "json/json.h"

static arena *A;

/* s with control and non-ASCII bytes shown as \xNN, for one-line TAP messages. */
static const char *show(const char *s)
{
    static char out[256];
    size_t k = 0;
    for (; *s && k + 5 < sizeof out; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c < 0x7F)
            out[k++] = (char)c;
        else
            k += (size_t)snprintf(out + k, sizeof out - k, "\\x%02X", c);
    }
    out[k] = 0;
    return out;
}

/* Inputs live in heap blocks of exactly their length (no NUL after them). */
static char *kept[512];
static size_t n_kept;

static char *exact_copy(const char *s, size_t n)
{
    char *c = malloc(n ? n : 1);
    memcpy(c, s, n);
    return c;
}

static int parse_rc(const char *s, size_t n, unsigned flags, json_error *e)
{
    json_val *v;
    json_error tmp;
    char *copy = exact_copy(s, n); /* so ASan sees any read past the end */
    int rc = json_parse(A, copy, n, flags, &v, e ? e : &tmp);
    free(copy);
    return rc;
}

static json_val *parse_ok(const char *s, unsigned flags)
{
    json_val *v = NULL;
    json_error e;
    size_t n = strlen(s);
    char *copy = exact_copy(s, n);
    if (n_kept < sizeof kept / sizeof kept[0])
        kept[n_kept++] = copy; /* numbers point into the input: keep it until the end */
    int rc = json_parse(A, copy, n, flags, &v, &e);
    if (rc) {
        printf("# unexpected parse failure of %s: %s at %d:%d\n", s, e.msg, e.line, e.col);
        return NULL;
    }
    return v;
}

/* Minified write of the parsed text; caller frees. */
static char *rewrite(const char *s, unsigned flags, int pretty)
{
    json_val *v = parse_ok(s, flags);
    if (!v)
        return NULL;
    buf b = BUF_INIT;
    json_write(&b, v, pretty);
    return buf_detach(&b, NULL);
}

static void roundtrip(const char *s)
{
    char *w = rewrite(s, 0, 0);
    is_str(w, s, "round trip %s", show(s));
    free(w);
}

static void reject(const char *s, unsigned flags, int want, const char *msg_part)
{
    json_error e;
    int rc = parse_rc(s, strlen(s), flags, &e);
    is_int(rc, want, "reject%s: %s", (flags & JSON_FHIR) ? " (FHIR)" : "", show(s));
    if (msg_part) {
        ok(strstr(e.msg, msg_part) != NULL, "  message mentions \"%s\"", msg_part);
        if (!strstr(e.msg, msg_part))
            printf("#   message was: %s\n", e.msg);
    }
}

static void reject_n(const char *s, size_t n, const char *what, const char *msg_part)
{
    json_error e;
    int rc = parse_rc(s, n, 0, &e);
    is_int(rc, ERR_INVALID, "reject %s", what);
    if (msg_part) {
        ok(strstr(e.msg, msg_part) != NULL, "  message mentions \"%s\" (got: %s)", msg_part, e.msg);
    }
}

static void position(const char *s, int line, int col, size_t off)
{
    json_error e;
    int rc = parse_rc(s, strlen(s), JSON_FHIR, &e);
    ok(rc < 0, "position: fails");
    is_int(e.line, line, "  line of error");
    is_int(e.col, col, "  column of error");
    is_int(e.off, off, "  offset of error");
}

static void test_accept(void)
{
    const char *good[] = {
        "0",
        "-0",
        "1",
        "-1",
        "10",
        "1.5",
        "1.50",
        "-0.0e+10",
        "1e5",
        "1E-5",
        "123456789012345678901234567890",
        "true",
        "false",
        "null",
        "\"\"",
        "\"a\"",
        "[]",
        "{}",
        "[1,2,3]",
        "{\"a\":1,\"b\":[true,false,null]}",
        "[[[[]]]]",
        "{\"a\":{\"b\":{\"c\":{}}}}",
        "\"\\u00e9\"",
        "[0.1,-0.25,1e+2,2E10,3.0e-0]",
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        json_val *v = parse_ok(good[i], 0);
        ok(v != NULL, "accept %s", show(good[i]));
    }
    ok(parse_ok(" \t\r\n{ \"a\" : [ 1 , 2 ] }\n ", 0) != NULL, "whitespace everywhere");
    ok(parse_ok("\xEF\xBB\xBF{\"a\":1}", 0) != NULL, "leading BOM skipped");

    roundtrip("{\"resourceType\":\"Patient\",\"id\":\"p1\",\"active\":true,\"x\":null}");
    roundtrip("[1.50,-0.0e+10,0,1E5,\"\\\"\\\\\\n\\t\"]");
    roundtrip("{\"a\":[],\"b\":{},\"c\":[{}],\"d\":\"caf\xc3\xa9\"}");
    roundtrip("\"\\u0001\\u001f\\b\\f\\r\"");
}

static void test_reject(void)
{
    /* grammar */
    reject("", 0, ERR_INVALID, "end of input");
    reject("   ", 0, ERR_INVALID, "end of input");
    reject("\xEF\xBB\xBF", 0, ERR_INVALID, "end of input");
    reject("{", 0, ERR_INVALID, "end of input");
    reject("[1,", 0, ERR_INVALID, "end of input");
    reject("[1,]", 0, ERR_INVALID, "expected a value");
    reject("{\"a\":1,}", 0, ERR_INVALID, "object key");
    reject("{\"a\" 1}", 0, ERR_INVALID, "':'");
    reject("{a:1}", 0, ERR_INVALID, "object key");
    reject("{'a':1}", 0, ERR_INVALID, NULL);
    reject("[1 2]", 0, ERR_INVALID, "','");
    reject("{\"a\":1 \"b\":2}", 0, ERR_INVALID, "','");
    reject("1 2", 0, ERR_INVALID, "after the top-level value");
    reject("{}x", 0, ERR_INVALID, "after the top-level value");
    reject("tru", 0, ERR_INVALID, NULL);
    reject("True", 0, ERR_INVALID, NULL);
    reject("nul", 0, ERR_INVALID, NULL);
    reject("nulll", 0, ERR_INVALID, "after the top-level value");
    reject("[\f1]", 0, ERR_INVALID, NULL); /* form feed is not JSON whitespace */
    reject("[\v1]", 0, ERR_INVALID, NULL);
    reject("\xc2\xa0[1]", 0, ERR_INVALID, NULL); /* NBSP is not whitespace */
    reject("NaN", 0, ERR_INVALID, NULL);
    reject("Infinity", 0, ERR_INVALID, NULL);
    reject("/* c */ 1", 0, ERR_INVALID, NULL);
    reject("{\"a\":1}}", 0, ERR_INVALID, NULL);
    reject("]", 0, ERR_INVALID, NULL);
    /* numbers */
    reject("01", 0, ERR_INVALID, "leading zero");
    reject("-01", 0, ERR_INVALID, "leading zero");
    reject("00", 0, ERR_INVALID, "leading zero");
    reject("+1", 0, ERR_INVALID, NULL);
    reject(".5", 0, ERR_INVALID, NULL);
    reject("1.", 0, ERR_INVALID, "decimal point");
    reject("1.e5", 0, ERR_INVALID, "decimal point");
    reject("-", 0, ERR_INVALID, NULL);
    reject("-a", 0, ERR_INVALID, "digit");
    reject("1e", 0, ERR_INVALID, "exponent");
    reject("1e+", 0, ERR_INVALID, "exponent");
    reject("1E-x", 0, ERR_INVALID, "exponent");
    reject("0x10", 0, ERR_INVALID, NULL);
    reject("[1.5.3]", 0, ERR_INVALID, NULL);
    /* strings */
    reject("\"abc", 0, ERR_INVALID, "end of input");
    reject("\"abcdefghijklmnop", 0, ERR_INVALID, "end of input");
    reject("\"a\tb\"", 0, ERR_INVALID, "control character U+0009");
    reject("\"a\nb\"", 0, ERR_INVALID, "control character");
    reject("\"0123456789\x01\"", 0, ERR_INVALID, "control character U+0001");
    reject("\"\\x\"", 0, ERR_INVALID, "invalid escape");
    reject("\"\\'\"", 0, ERR_INVALID, "invalid escape");
    reject("\"\\", 0, ERR_INVALID, "end of input");
    reject("\"\\u12\"", 0, ERR_INVALID, "\\u escape");
    reject("\"\\u12G4\"", 0, ERR_INVALID, "\\u escape");
    reject("\"\\ud800\"", 0, ERR_INVALID, "surrogate");
    reject("\"\\ud800\\u0041\"", 0, ERR_INVALID, "surrogate");
    reject("\"\\ud800\\ud800\"", 0, ERR_INVALID, "surrogate");
    reject("\"\\udc00\"", 0, ERR_INVALID, "low surrogate");
    reject("\"\\udfff\\ud800\"", 0, ERR_INVALID, "low surrogate");
    /* UTF-8 */
    reject("\"\x80\"", 0, ERR_INVALID, "invalid UTF-8 at byte 1");
    reject("\"ab\xc0\xaf\"", 0, ERR_INVALID, "invalid UTF-8 at byte 3"); /* overlong '/' */
    reject("\"\xc1\xbf\"", 0, ERR_INVALID, "invalid UTF-8");             /* overlong */
    reject("\"\xe0\x80\xaf\"", 0, ERR_INVALID, "invalid UTF-8");         /* overlong 3 */
    reject("\"\xf0\x80\x80\xaf\"", 0, ERR_INVALID, "invalid UTF-8");     /* overlong 4 */
    reject("\"\xed\xa0\x80\"", 0, ERR_INVALID, "invalid UTF-8");         /* U+D800 */
    reject("\"\xed\xbf\xbf\"", 0, ERR_INVALID, "invalid UTF-8");         /* U+DFFF */
    reject("\"\xf4\x90\x80\x80\"", 0, ERR_INVALID, "invalid UTF-8");     /* > U+10FFFF */
    reject("\"\xf5\x80\x80\x80\"", 0, ERR_INVALID, "invalid UTF-8");
    reject("\"\xff\"", 0, ERR_INVALID, "invalid UTF-8");
    reject("\"\xc3\"", 0, ERR_INVALID, "invalid UTF-8"); /* truncated by quote */
    reject("\"\xe2\x82\"", 0, ERR_INVALID, "invalid UTF-8");
    reject("\"\xf0\x9f\x98\"", 0, ERR_INVALID, "invalid UTF-8");
    reject("\"\xe2\x82", 0, ERR_INVALID, "invalid UTF-8"); /* truncated by end */
    reject("\xff", 0, ERR_INVALID, "invalid UTF-8 at byte 0");
    reject_n("\"a\0b\"", 5, "raw NUL in a string", "control character U+0000");
    reject_n("[1]\0", 4, "NUL after the value", "after the top-level value");

    /* edge code points that are valid */
    ok(parse_ok("\"\xf4\x8f\xbf\xbf\"", 0) != NULL, "U+10FFFF accepted");
    ok(parse_ok("\"\xee\x80\x80\xef\xbf\xbf\"", 0) != NULL, "U+E000 and U+FFFF accepted");
    ok(parse_ok("\"\xc2\x80\xdf\xbf\"", 0) != NULL, "2-byte bounds accepted");

    /* duplicate keys, with and without FHIR */
    reject("{\"a\":1,\"a\":2}", 0, ERR_INVALID, "duplicate key 'a'");
    reject("{\"id\":1,\"b\":2,\"id\":3}", JSON_FHIR, ERR_INVALID, "duplicate key 'id'");
    reject("{\"id\":1,\"\\u0069d\":2}", 0, ERR_INVALID, "duplicate key 'id'");
    ok(parse_ok("{\"a\":{\"a\":1},\"b\":{\"a\":2}}", 0) != NULL, "same key in sibling objects");
    ok(parse_ok("{\"a\":1,\"A\":2,\"a \":3,\"\":4}", 0) != NULL, "near-duplicates are distinct");
}

static void test_api(void)
{
    json_val *v = (json_val *)&v;
    ok(json_parse(A, "[1,", 3, 0, &v, NULL) == ERR_INVALID, "failure without an error struct");
    ok(v == NULL, "*out is NULL after a failure");
    json_error e;
    ok(json_parse(A, "[1]", 3, 0, &v, &e) == 0 && v && v->n == 1, "success");
    is_str(e.msg, "", "error message empty after success");
    ok(json_parse(A, "[1] trailing", 3, 0, &v, &e) == 0, "only len bytes are read");
    ok(json_parse(A, NULL, 0, 0, &v, &e) == ERR_INVALID, "NULL, 0 is an empty document");
}

static void test_fhir(void)
{
    reject("{\"gender\":null}", JSON_FHIR, ERR_INVALID,
           "null is not allowed as a value in FHIR JSON (key 'gender')");
    ok(parse_ok("{\"gender\":null}", 0) != NULL, "null member allowed without FHIR");
    reject("{\"a\":{}}", JSON_FHIR, ERR_INVALID, "empty object is not allowed in FHIR JSON");
    reject("{}", JSON_FHIR, ERR_INVALID, "empty object");
    reject("{\"a\":[]}", JSON_FHIR, ERR_INVALID, "empty array is not allowed in FHIR JSON");
    reject("{\"a\":[ ]}", JSON_FHIR, ERR_INVALID, "empty array");
    reject("{\"a\":[null,null]}", JSON_FHIR, ERR_INVALID, "only nulls");
    reject("{\"a\":[null]}", JSON_FHIR, ERR_INVALID, "only nulls");
    reject("null", JSON_FHIR, ERR_INVALID, "top-level");
    reject("{\"a\":[{\"b\":null}]}", JSON_FHIR, ERR_INVALID, "(key 'b')");
    json_val *v =
        parse_ok("{\"given\":[\"A\",null,\"C\"],\"_given\":[null,{\"id\":\"x\"},null]}", JSON_FHIR);
    ok(v != NULL, "nulls in arrays allowed for primitive alignment");
    if (v) {
        json_val *g = json_get(v, "given");
        ok(g && g->type == JSON_ARRAY && g->n == 3 && g->u.items[1].type == JSON_NULL,
           "  null item kept in place");
    }
    ok(parse_ok("[[1],[2]]", JSON_FHIR) != NULL, "FHIR: arrays of arrays fine");
    ok(parse_ok("\"x\"", JSON_FHIR) != NULL, "FHIR: top-level scalar fine");
}

static void test_positions(void)
{
    position("{\n  \"a\": 1,\n  \"a\": 2\n}", 3, 3, 14);          /* duplicate key at its quote */
    position("{\"a\":\n  nul}", 2, 3, 8);                         /* bad literal */
    position("[1,\n2,\n3 4]", 3, 3, 9);                           /* missing comma */
    position("{\"name\":\"Jos\xc3\xa9\",\"x\":null}", 1, 20, 20); /* column counts characters */
    position("{\"a\":1,\"b\":\"x\ty\"}", 1, 14, 13);              /* raw tab */
    position("[1,2", 1, 5, 4);                                    /* end of input */
    position("\xEF\xBB\xBF[}", 1, 2, 4);                          /* BOM not a column */
}

static void test_values(void)
{
    json_val *v =
        parse_ok("{\"a\":1.50,\"b\":-0.0e+10,\"c\":\"x\\u0000y\",\"d\":\"\\u00e9\\ud83d\\ude00\","
                 "\"e\":\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"}",
                 0);
    ok(v && v->type == JSON_OBJECT && v->n == 5, "object with 5 members");
    if (!v)
        return;
    json_val *a = json_get(v, "a"), *b = json_get(v, "b"), *c = json_get(v, "c");
    ok(a && a->type == JSON_NUMBER && a->n == 4 && memcmp(a->u.s, "1.50", 4) == 0,
       "number text 1.50 kept");
    ok(b && b->type == JSON_NUMBER && b->n == 8 && memcmp(b->u.s, "-0.0e+10", 8) == 0,
       "number text -0.0e+10 kept");
    ok(c && c->n == 3 && memcmp(c->u.s, "x\0y", 4) == 0, "\\u0000 decodes to NUL, n counts it");
    is_str(json_get_str(v, "d"), "\xc3\xa9\xf0\x9f\x98\x80",
           "\\u00e9 and surrogate pair decode to UTF-8");
    is_str(json_get_str(v, "e"), "/\b\f\n\r\t\"\\", "simple escapes");
    ok(json_get_str(v, "a") == NULL, "json_get_str on a number is NULL");
    ok(json_get(v, "zz") == NULL, "absent key is NULL");
    ok(json_get(a, "x") == NULL, "json_get on a non-object is NULL");
    ok(json_getn(v, "abc", 1) == a, "json_getn uses the length");
    is_int(a->off, 5, "offset of a number");
    is_int(v->u.members[2].val.off, 27, "offset of a string");
    is_int(v->off, 0, "offset of the root");

    /* long strings cross the 8-byte fast path in every alignment */
    for (int len = 0; len < 40; len++) {
        char in[64], want[64];
        int k = 0;
        in[k++] = '"';
        for (int i = 0; i < len; i++) {
            want[i] = (char)('a' + i % 26);
            in[k++] = want[i];
        }
        want[len] = 0;
        in[k++] = '"';
        in[k] = 0;
        json_val *s = parse_ok(in, 0);
        if (!s || strcmp(s->u.s, want) != 0 || s->n != (uint32_t)len) {
            ok(0, "string of length %d", len);
            return;
        }
    }
    ok(1, "strings of length 0..39 decode exactly");
    /* escape at every position */
    for (int pos = 0; pos < 20; pos++) {
        char in[64], want[64];
        int k = 0, j = 0;
        in[k++] = '"';
        for (int i = 0; i < 20; i++) {
            if (i == pos) {
                in[k++] = '\\';
                in[k++] = 'n';
                want[j++] = '\n';
            } else {
                in[k++] = 'x';
                want[j++] = 'x';
            }
        }
        in[k++] = '"';
        in[k] = 0;
        want[j] = 0;
        json_val *s = parse_ok(in, 0);
        if (!s || strcmp(s->u.s, want) != 0) {
            ok(0, "escape at position %d", pos);
            return;
        }
    }
    ok(1, "an escape at each position 0..19 decodes exactly");
}

static void test_depth(void)
{
    char d[200];
    for (int depth = 63; depth <= 65; depth++) {
        int k = 0;
        for (int i = 0; i < depth; i++)
            d[k++] = '[';
        d[k++] = '1';
        for (int i = 0; i < depth; i++)
            d[k++] = ']';
        json_error e;
        int rc = parse_rc(d, (size_t)k, 0, &e);
        is_int(rc, depth <= JSON_MAX_DEPTH ? 0 : ERR_TOOBIG, "array nesting %d", depth);
        if (depth == 65)
            is_int(e.off, 64, "  error at the 65th bracket");
    }
    int k;
    char *big = malloc(65 * 6 + 8);
    for (int depth = 64; depth <= 65; depth++) {
        k = 0;
        for (int i = 0; i < depth; i++) {
            memcpy(big + k, "{\"a\":", 5);
            k += 5;
        }
        big[k++] = '1';
        for (int i = 0; i < depth; i++)
            big[k++] = '}';
        is_int(parse_rc(big, (size_t)k, JSON_FHIR, NULL), depth <= 64 ? 0 : ERR_TOOBIG,
               "object nesting %d", depth);
    }
    free(big);
}

static void test_wide(void)
{
    /* wide containers exercise the heap scratch stacks and the hashed duplicate check */
    buf b = BUF_INIT;
    buf_putc(&b, '[');
    for (int i = 0; i < 1000; i++)
        buf_printf(&b, "%s{\"k%d\":[%d,%d]}", i ? "," : "", i, i, -i);
    buf_putc(&b, ']');
    json_val *v = parse_ok(buf_cstr(&b), 0);
    ok(v && v->n == 1000, "array of 1000 objects");
    if (v) {
        json_val *last = json_get(&v->u.items[999], "k999");
        ok(last && last->n == 2 && last->u.items[1].n == 4 &&
               memcmp(last->u.items[1].u.s, "-999", 4) == 0,
           "  last item intact");
        buf w = BUF_INIT;
        json_write(&w, v, 0);
        is_str(buf_cstr(&w), buf_cstr(&b), "  round trip");
        buf_free(&w);
    }
    buf_reset(&b);
    buf_putc(&b, '{');
    for (int i = 0; i < 500; i++)
        buf_printf(&b, "%s\"key%d\":%d", i ? "," : "", i, i);
    buf_putc(&b, '}');
    v = parse_ok(buf_cstr(&b), JSON_FHIR);
    ok(v && v->n == 500, "object with 500 members");
    if (v) {
        json_val *m = json_get(v, "key377");
        ok(m && m->n == 3 && memcmp(m->u.s, "377", 3) == 0, "  lookup in a wide object");
    }
    b.len--;
    buf_puts(&b, ",\"key250\":1}");
    reject(buf_cstr(&b), 0, ERR_INVALID, "duplicate key 'key250'");
    buf_reset(&b);
    buf_puts(&b, "{\"x\":1");
    for (int i = 0; i < 40; i++)
        buf_printf(&b, ",\"k%d\":%d", i, i);
    buf_puts(&b, ",\"x\":2}");
    reject(buf_cstr(&b), 0, ERR_INVALID, "duplicate key 'x'");
    buf_free(&b);
}

static void test_write(void)
{
    char *w = rewrite("{ \"a\" : [ 1 , \"x\" ] , \"b\" : true }", 0, 0);
    is_str(w, "{\"a\":[1,\"x\"],\"b\":true}", "minified write drops whitespace");
    free(w);
    w = rewrite("{\"a\":[1,\"x\",{\"c\":null}],\"b\":{},\"e\":[],\"d\":{\"e\":-1.50}}", 0, 1);
    is_str(w,
           "{\n"
           "  \"a\": [\n"
           "    1,\n"
           "    \"x\",\n"
           "    {\n"
           "      \"c\": null\n"
           "    }\n"
           "  ],\n"
           "  \"b\": {},\n"
           "  \"e\": [],\n"
           "  \"d\": {\n"
           "    \"e\": -1.50\n"
           "  }\n"
           "}",
           "pretty write");
    free(w);
    w = rewrite("[]", 0, 1);
    is_str(w, "[]", "pretty empty array");
    free(w);
    w = rewrite("\"x\"", 0, 1);
    is_str(w, "\"x\"", "pretty scalar");
    free(w);

    buf b = BUF_INIT;
    json_write_string(&b, "a\"b\\c\n\t\r\b\f\x01\x1f\x7f \xc3\xa9/", 17);
    is_str(buf_cstr(&b), "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\x7f \xc3\xa9/\"",
           "json_write_string escapes");
    buf_reset(&b);
    json_write_string(&b, NULL, 0);
    is_str(buf_cstr(&b), "\"\"", "empty string (NULL, 0)");
    buf_reset(&b);
    json_write_string(&b, "x\0y", 3);
    is_str(buf_cstr(&b), "\"x\\u0000y\"", "NUL written as \\u0000");
    buf_reset(&b);
    json_write_string(&b, "0123456789abcdef\"0123456789abcdef", 33);
    is_str(buf_cstr(&b), "\"0123456789abcdef\\\"0123456789abcdef\"", "escape inside long runs");
    buf_free(&b);

    /* the buffer's size limit holds even when it already has spare capacity */
    buf lim = BUF_INIT;
    buf_reserve(&lim, 4096);
    lim.limit = 20;
    json_write(&lim, parse_ok("{\"resourceType\":\"Patient\",\"id\":\"123\"}", 0), 0);
    is_int(lim.err, ERR_TOOBIG, "writing past buf.limit sets ERR_TOOBIG");
    ok(lim.len <= 20, "  and nothing past the limit is written (len %zu)", lim.len);
    buf_reset(&lim);
    jw wl;
    jw_init(&wl, &lim, 1);
    jw_obj(&wl);
    jw_key(&wl, "resourceType");
    jw_str(&wl, "Patient");
    jw_end(&wl);
    is_int(lim.err, ERR_TOOBIG, "jw honours buf.limit too");
    buf_free(&lim);

    /* written text re-parses to an equal tree */
    const char *src = "{\"s\":\"\\u0000\\u001f\\\"\\\\\xe2\x82\xac\",\"n\":[1e-7,0.10]}";
    json_val *v = parse_ok(src, 0);
    for (int pretty = 0; pretty < 2; pretty++) {
        buf o = BUF_INIT;
        json_write(&o, v, pretty);
        json_val *v2 = parse_ok(buf_cstr(&o), 0);
        ok(v2 && json_equal(v, v2), "write (%s) then parse gives an equal tree",
           pretty ? "pretty" : "minified");
        buf_free(&o);
    }
}

static void test_jw(void)
{
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b, 0);
    jw_obj(&w);
    jw_key(&w, "resourceType");
    jw_str(&w, "Bundle");
    jw_key(&w, "total");
    jw_int(&w, -42);
    jw_key(&w, "ok");
    jw_bool(&w, 1);
    jw_key(&w, "no");
    jw_bool(&w, 0);
    jw_key(&w, "nil");
    jw_null(&w);
    jw_keyn(&w, "dec!", 3);
    jw_num(&w, "1.50", 4);
    jw_key(&w, "entry");
    jw_arr(&w);
    jw_obj(&w);
    jw_end(&w);
    jw_arr(&w);
    jw_end(&w);
    jw_raw(&w, "{\"r\":1}", 7);
    jw_strn(&w, "ab", 1);
    jw_end(&w);
    jw_key(&w, "v");
    jw_val(&w, parse_ok("{\"x\":[1,2]}", 0));
    jw_end(&w);
    is_str(buf_cstr(&b),
           "{\"resourceType\":\"Bundle\",\"total\":-42,\"ok\":true,\"no\":false,\"nil\":null,"
           "\"dec\":1.50,\"entry\":[{},[],{\"r\":1},\"a\"],\"v\":{\"x\":[1,2]}}",
           "jw minified");
    is_int(b.err, 0, "  no error");
    is_int(w.depth, 0, "  balanced");

    buf_reset(&b);
    jw_init(&w, &b, 1);
    jw_obj(&w);
    jw_key(&w, "a");
    jw_arr(&w);
    jw_int(&w, 1);
    jw_val(&w, parse_ok("{\"x\":[true]}", 0));
    jw_arr(&w);
    jw_end(&w);
    jw_end(&w);
    jw_key(&w, "b");
    jw_obj(&w);
    jw_end(&w);
    jw_end(&w);
    is_str(buf_cstr(&b),
           "{\n"
           "  \"a\": [\n"
           "    1,\n"
           "    {\n"
           "      \"x\": [\n"
           "        true\n"
           "      ]\n"
           "    },\n"
           "    []\n"
           "  ],\n"
           "  \"b\": {}\n"
           "}",
           "jw pretty, with an embedded tree");

    buf_reset(&b);
    jw_init(&w, &b, 0);
    jw_str(&w, "top");
    is_str(buf_cstr(&b), "\"top\"", "jw top-level scalar");
    buf_reset(&b);
    jw_init(&w, &b, 0);
    jw_end(&w);
    ok(b.err != 0, "unbalanced jw_end sets the sticky error");
    buf_reset(&b);
    jw_init(&w, &b, 0);
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        jw_arr(&w);
    is_int(b.err, 0, "jw nesting %d ok", JSON_MAX_DEPTH);
    jw_arr(&w);
    is_int(b.err, ERR_TOOBIG, "jw nesting %d is ERR_TOOBIG", JSON_MAX_DEPTH + 1);
    buf_free(&b);
}

static void test_edit(void)
{
    json_val *o = json_new_object(A);
    ok(o && o->type == JSON_OBJECT && o->n == 0, "new object");
    json_val *s = json_new_string(A, "abc", 2);
    json_val *n = json_new_number(A, "1.50", 4);
    ok(s && s->n == 2 && strcmp(s->u.s, "ab") == 0, "new string copies n bytes, NUL-terminated");
    is_int(json_obj_set(A, o, "b", s), 0, "set b");
    is_int(json_obj_set(A, o, "a", n), 0, "set a");
    json_val *arr = json_new_array(A);
    is_int(json_arr_push(A, arr, s), 0, "push 1");
    is_int(json_arr_push(A, arr, n), 0, "push 2");
    is_int(json_obj_set(A, o, "c", arr), 0, "set c");
    buf b = BUF_INIT;
    json_write(&b, o, 0);
    is_str(buf_cstr(&b), "{\"b\":\"ab\",\"a\":1.50,\"c\":[\"ab\",1.50]}", "built tree");
    is_int(json_obj_set(A, o, "b", json_new_number(A, "7", 1)), 0, "replace b");
    buf_reset(&b);
    json_write(&b, o, 0);
    is_str(buf_cstr(&b), "{\"b\":7,\"a\":1.50,\"c\":[\"ab\",1.50]}", "replace keeps position");
    json_obj_del(o, "a");
    json_obj_del(o, "zz");
    buf_reset(&b);
    json_write(&b, o, 0);
    is_str(buf_cstr(&b), "{\"b\":7,\"c\":[\"ab\",1.50]}", "delete keeps order of the rest");
    /* set a value taken from the object itself (may move while growing) */
    is_int(json_obj_set(A, o, "d", json_get(o, "b")), 0, "set from own member");
    /* edit a parsed tree */
    json_val *p = parse_ok("{\"resourceType\":\"Patient\",\"id\":\"x\"}", JSON_FHIR);
    json_val *m = json_new_object(A);
    json_obj_set(A, m, "versionId", json_new_string(A, "1", 1));
    is_int(json_obj_set(A, p, "meta", m), 0, "append to parsed object");
    json_obj_set(A, p, "id", json_new_string(A, "y", 1));
    buf_reset(&b);
    json_write(&b, p, 0);
    is_str(buf_cstr(&b),
           "{\"resourceType\":\"Patient\",\"id\":\"y\",\"meta\":{\"versionId\":\"1\"}}",
           "edited parsed tree");
    for (int i = 0; i < 100; i++)
        json_arr_push(A, arr, n);
    is_int(arr->n, 102, "array grows by push");
    ok(json_obj_set(A, arr, "x", n) == ERR_INVALID, "obj_set on array is ERR_INVALID");
    ok(json_arr_push(A, o, n) == ERR_INVALID, "arr_push on object is ERR_INVALID");
    buf_free(&b);
}

static void test_equal(void)
{
    json_val *a = parse_ok("{\"a\":[1,\"x\",null,true],\"b\":{\"c\":1.0}}", 0);
    json_val *b = parse_ok("{ \"a\" : [1, \"x\", null, true], \"b\": {\"c\": 1.0} }", 0);
    ok(json_equal(a, b), "equal across whitespace");
    ok(!json_equal(a, parse_ok("{\"a\":[1,\"x\",null,true],\"b\":{\"c\":1}}", 0)),
       "1.0 != 1 (exact text)");
    ok(!json_equal(a, parse_ok("{\"b\":{\"c\":1.0},\"a\":[1,\"x\",null,true]}", 0)),
       "member order matters");
    ok(!json_equal(a, parse_ok("{\"a\":[1,\"x\",null,false],\"b\":{\"c\":1.0}}", 0)),
       "true != false");
    ok(!json_equal(parse_ok("\"ab\"", 0), parse_ok("\"ac\"", 0)), "strings differ");
    ok(json_equal(parse_ok("\"\\u0041\"", 0), parse_ok("\"A\"", 0)), "decoded strings compare");
    ok(!json_equal(parse_ok("[1]", 0), parse_ok("[1,1]", 0)), "lengths differ");
    ok(!json_equal(parse_ok("{\"a\":1}", 0), parse_ok("{\"b\":1}", 0)), "keys differ");
    ok(json_equal(parse_ok("{}", 0), json_new_object(A)), "empty objects equal");
}

int main(void)
{
    A = arena_new(0);
    test_accept();
    test_reject();
    test_api();
    test_fhir();
    test_positions();
    test_values();
    test_depth();
    test_wide();
    test_write();
    test_jw();
    test_edit();
    test_equal();
    arena_free(A);
    for (size_t i = 0; i < n_kept; i++)
        free(kept[i]);
    return tap_done();
}
