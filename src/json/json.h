/*
 * json.h -- strict RFC 8259 JSON parser and writer, shaped for FHIR.
 *
 * Why our own: FHIR decimals must keep their exact spelling ("1.50" stays "1.50"),
 * and JSON is the hottest path of the server. A parsed document is a tree of
 * json_val nodes allocated from an arena; nothing is freed individually.
 *
 *   {"a":[1,"x"],"b":true}
 *
 *   json_val OBJECT n=2 --u.members--> [ {key "a", val ARRAY n=2 --u.items--> [NUMBER "1"][STRING "x"]},
 *                                        {key "b", val TRUE} ]
 *
 * Strings are decoded (escapes resolved), validated UTF-8 and NUL-terminated;
 * `n` is their byte length (a string may contain U+0000, so use n, not strlen).
 * Numbers keep their raw text (u.s points into the parsed input, or into the
 * arena, not NUL-terminated; n is its length). Members keep document order.
 *
 * Lifetime: every node and string returned lives until the arena is reset or
 * freed; NUMBER text may point into the input buffer, which must outlive the tree.
 */
#ifndef HORTUS_JSON_H
#define HORTUS_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"

/* Hard caps (documented in docs/LIMITS.md). */
#define JSON_MAX_DEPTH 64 /* nesting of arrays/objects */

typedef enum json_type {
    JSON_NULL = 0,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_type;

typedef struct json_val json_val;
typedef struct json_member json_member;

struct json_val {
    json_type type;
    uint32_t n;   /* STRING/NUMBER: byte length; ARRAY: items; OBJECT: members */
    uint32_t off; /* byte offset of the value in the parsed input (0 if built) */
    union {
        const char *s;        /* STRING: decoded, NUL-terminated; NUMBER: raw text */
        json_val *items;      /* ARRAY: n contiguous values */
        json_member *members; /* OBJECT: n members in document order */
    } u;
};

struct json_member {
    const char *key; /* decoded, NUL-terminated */
    uint32_t key_len;
    json_val val;
};

/* Parse flags. */
#define JSON_FHIR 1u /* FHIR JSON rules: no null member values, no empty objects or
                        arrays, no duplicate keys; null allowed only inside arrays
                        (primitive-array alignment with "_name" siblings) */

typedef struct json_error {
    size_t off;     /* byte offset where the problem was found */
    int line, col;  /* 1-based position of off; col counts characters (UTF-8 code
                       points), a leading BOM is not counted */
    char msg[160];  /* what was wrong, e.g. "expected ':' after object key" */
} json_error;

/*
 * Parse text[0..len) (need not be NUL-terminated) into a tree allocated in `a`.
 * Returns 0 and sets *out, or ERR_INVALID (syntax, bad UTF-8, FHIR rule),
 * ERR_TOOBIG (depth over JSON_MAX_DEPTH) or ERR_NOMEM, filling *err when not NULL.
 */
int json_parse(arena *a, const char *text, size_t len, unsigned flags, json_val **out,
               json_error *err);

/* Member lookup on an OBJECT (linear; FHIR objects are small). NULL when absent or
 * when obj is not an object. */
json_val *json_get(const json_val *obj, const char *key);
json_val *json_getn(const json_val *obj, const char *key, size_t key_len);

/* The string value of obj[key] when it is a STRING, else NULL. */
const char *json_get_str(const json_val *obj, const char *key);

/* Equality of two trees (numbers compare by exact text; member order matters). */
int json_equal(const json_val *x, const json_val *y);

/* --- building and editing trees (all memory from the arena) ------------------- */
/* Values are copied by value: a copied ARRAY or OBJECT shares its items/members
 * with the original, so grow only one of the two copies. */
json_val *json_new_string(arena *a, const char *s, size_t n); /* copies s */
json_val *json_new_number(arena *a, const char *text, size_t n); /* copies text */
json_val *json_new_object(arena *a);                          /* empty object */
json_val *json_new_array(arena *a);                           /* empty array */
/* Set obj[key] = *val (copied by value), replacing an existing member in place or
 * appending at the end. Returns 0 or ERR_NOMEM. */
int json_obj_set(arena *a, json_val *obj, const char *key, const json_val *val);
/* Remove obj[key] if present (keeps the order of the rest). */
void json_obj_del(json_val *obj, const char *key);
/* Append *val (copied by value) to an ARRAY. Returns 0 or ERR_NOMEM. */
int json_arr_push(arena *a, json_val *arr, const json_val *val);

/* --- writing ------------------------------------------------------------------ */
/* Serialise v into b: minified, or indented by two spaces when pretty. Layout and
 * string escaping are those of JavaScript's JSON.stringify(v) and
 * JSON.stringify(v, null, 2) (no trailing newline, empty containers as {} and []),
 * except that numbers keep their raw text where JavaScript would reformat them. */
void json_write(buf *b, const json_val *v, int pretty);
/* Write s[0..n) as a quoted, escaped JSON string. */
void json_write_string(buf *b, const char *s, size_t n);

/*
 * Streaming writer for responses built field by field. It inserts commas, colons
 * and (when pretty) newlines and indentation; the caller supplies structure:
 *
 *   jw w; jw_init(&w, &b, pretty);
 *   jw_obj(&w); jw_key(&w, "resourceType"); jw_str(&w, "Bundle"); jw_end(&w);
 */
typedef struct jw {
    buf *b;
    int pretty;
    int depth;
    uint8_t first[JSON_MAX_DEPTH + 2]; /* no element written yet at this depth */
    uint8_t after_key;
} jw;

void jw_init(jw *w, buf *b, int pretty);
void jw_obj(jw *w);                   /* { */
void jw_arr(jw *w);                   /* [ */
void jw_end(jw *w);                   /* } or ], whichever is open */
void jw_key(jw *w, const char *key);  /* "key": (inside an object) */
void jw_keyn(jw *w, const char *key, size_t n);
void jw_str(jw *w, const char *s);
void jw_strn(jw *w, const char *s, size_t n);
void jw_num(jw *w, const char *text, size_t n); /* raw number text, written as is */
void jw_int(jw *w, int64_t v);
void jw_bool(jw *w, int v);
void jw_null(jw *w);
void jw_val(jw *w, const json_val *v); /* a whole tree, honouring w->pretty */
void jw_raw(jw *w, const char *json, size_t n); /* pre-serialised JSON value */

#endif
