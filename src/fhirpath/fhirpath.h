/*
 * fhirpath.h -- the FHIRPath engine of hortus (FHIRPath N1 as used by FHIR R4).
 *
 * An expression is compiled once into a tree of nodes whose functions are
 * resolved and whose literals are already converted, then evaluated many times
 * over JSON trees (src/json/json.h) with type information from the generated R4
 * model (src/fhir/model.h). Search indexing, invariants, SQL-on-FHIR views,
 * patch and subscription filters all call this API:
 *
 *   fp_error e;
 *   fp_expr *x = fp_compile("Patient.name.where(use = 'official').given", &e);
 *   if (!x) report(e.pos, e.msg);
 *   fp_coll out;
 *   if (fp_eval(x, arena, resource_json, NULL, &out, &e) == 0)
 *       for (size_t i = 0; i < out.n; i++) ... out.v[i] ...
 *   fp_write_json(&b, &out);          // [ "Peter", "James" ]
 *   fp_free(x);
 *
 * Ownership and lifetimes:
 *   - fp_expr is heap memory owned by the caller until fp_free(). A compiled
 *     expression is immutable: one fp_expr may be evaluated by several threads
 *     at once, each with its own arena.
 *   - A result collection and every value in it live in the caller's arena and
 *     may point into the evaluated JSON tree and into the fp_expr (string
 *     literals): they are valid until the arena is reset/freed, the JSON tree
 *     dies, or the expression is freed, whichever comes first.
 *
 * Limits (documented in docs/FHIRPATH.md): FP_MAX_EXPR_LEN bytes of source,
 * FP_MAX_DEPTH nesting in the parser and in evaluation, FP_MAX_STEPS work units
 * per evaluation, FP_MAX_MEMORY arena bytes per evaluation, FP_MAX_ITEMS items in
 * one collection, FP_MAX_STRING bytes in one computed string. Hitting one of them is ERR_TOOBIG (compile) or ERR_LIMIT
 * (evaluation) with a message saying which.
 *
 * Regular expressions (matches(), matchesFull(), replaceMatches()) run on PCRE2, a
 * backtracking matcher, so a pattern written by a client must not be able to buy
 * unbounded time or memory: FP_REGEX_MAX_PATTERN and FP_REGEX_MAX_NEST cap what is
 * compiled (ERR_TOOBIG; ERR_LIMIT for a pattern computed during evaluation), and
 * each match attempt runs under FP_REGEX_MATCH_LIMIT, FP_REGEX_DEPTH_LIMIT and
 * FP_REGEX_HEAP_LIMIT_KIB (ERR_LIMIT, "regular expression too costly"). Those three
 * hold per start position, so the matcher also reports its progress (an automatic
 * callout before each pattern item) and pays for it with evaluation steps: one per
 * item tried and one per FP_STRING_BYTES_PER_STEP bytes it moved over the subject.
 * A search that rescans a long subject from every start position therefore meets
 * FP_MAX_STEPS like any other costly expression.
 */
#ifndef HORTUS_FHIRPATH_H
#define HORTUS_FHIRPATH_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "fhir/model.h"
#include "fhirpath/datetime.h"
#include "fhirpath/decimal.h"
#include "fhirpath/quantity.h"
#include "json/json.h"

#define FP_MAX_EXPR_LEN (64u * 1024u) /* source bytes */
#define FP_MAX_DEPTH 200              /* parser nesting and evaluation recursion */
#define FP_MAX_STEPS 10000000u        /* work units (one per node visit and item) */
#define FP_MAX_ITEMS 1000000u         /* items in one collection */
#define FP_MAX_STRING (16u << 20)     /* bytes of one computed string */
#define FP_STRING_BYTES_PER_STEP 16   /* building strings costs a step per 16 bytes */
#define FP_MAX_MEMORY (256u << 20)    /* arena bytes one evaluation may allocate */

#define FP_REGEX_MAX_PATTERN 4096u      /* bytes of one regular expression */
#define FP_REGEX_MAX_NEST 64u           /* parentheses nested in one regular expression */
#define FP_REGEX_MATCH_LIMIT 1000000u   /* backtracking points at one start position */
#define FP_REGEX_DEPTH_LIMIT 50000u     /* nested backtracking points at one start position */
#define FP_REGEX_HEAP_LIMIT_KIB 8192u   /* KiB of backtracking memory of one match */

typedef struct fp_expr fp_expr;

/* Where and why compilation or evaluation failed. pos is a 0-based byte offset
 * into the expression source (line/col 1-based), or -1 when not positional. */
typedef struct fp_error {
    int code;      /* the negative err.h code also returned */
    long pos;
    int line, col;
    char msg[200];
} fp_error;

/* The kinds of value a collection item can be. */
typedef enum fp_kind {
    FP_BOOL = 1,
    FP_INT,
    FP_DEC,
    FP_STR,
    FP_DATE,
    FP_DATETIME,
    FP_TIME,
    FP_QTY,
    FP_OBJ,  /* a JSON object: a complex datatype, backbone element or resource */
    FP_TYPE, /* a type descriptor, the result of type() */
} fp_kind;

/*
 * One item. Values that come from the JSON tree keep their node (and the "_name"
 * companion object holding id/extensions of a primitive) and their model type;
 * computed values have node == NULL and ftype == NULL (System types).
 * A primitive that has only extensions (no value) has novalue = 1.
 */
typedef struct fp_val {
    uint8_t kind;          /* fp_kind */
    uint8_t novalue;       /* primitive element present only through "_name" */
    const fhir_type *ftype; /* FHIR model type, or NULL (System type / unknown) */
    const json_val *node;  /* the JSON value this item is, or NULL if computed */
    const json_val *ext;   /* "_name" object of a primitive, or NULL */
    union {
        int b;
        int64_t i;
        fp_dec d;
        struct {
            const char *p; /* not necessarily NUL-terminated */
            size_t n;
        } s;
        fp_dt dt; /* FP_DATE, FP_DATETIME, FP_TIME */
        fp_qty q;
        struct {
            const char *ns;   /* "System" or "FHIR" */
            const char *name; /* "Boolean", "Patient", ... */
        } t;
    } u;
} fp_val;

/* A collection: n items in an array from the evaluation arena. */
typedef struct fp_coll {
    fp_val *v;
    size_t n;
} fp_coll;

/* A caller-defined environment variable (%name), e.g. SQL-on-FHIR view constants. */
typedef struct fp_var {
    const char *name;     /* without the '%' */
    const json_val *value; /* a JSON value; an array gives a collection of its items */
} fp_var;

/* Options and environment of one evaluation; NULL means all defaults. */
typedef struct fp_env {
    const fp_var *vars; /* looked up before the built-in variables */
    size_t nvars;
    const json_val *resource;      /* %resource (default: the evaluated resource) */
    const json_val *root_resource; /* %rootResource (default: %resource) */
    const json_val *context;       /* %context (default: the evaluated input) */
    int64_t now_ms;     /* now()/today() instant in ms since the epoch; 0 = clock */
    int tz_offset_min;  /* local offset used for now()/today()/timeOfDay() */
    int trace;          /* 1: trace() writes to stderr; 0: silent */
    int exact_resolve;  /* 1: resolve() gives only resources found (contained, Bundle);
                           0 (default): a reference "[base/]Type/id" not found gives a
                           stub {"resourceType":Type,"id":id}, so the type tests of R4
                           search parameters (subject.where(resolve() is Patient)) work */
    uint64_t max_steps; /* 0 = FP_MAX_STEPS */
    size_t max_memory;  /* 0 = FP_MAX_MEMORY */
} fp_env;

/*
 * Compile `src` (NUL-terminated). Returns a new expression, or NULL with *err
 * filled (err may be NULL): ERR_INVALID for syntax errors, unknown functions and
 * wrong argument counts; ERR_TOOBIG when a limit is passed; ERR_NOMEM.
 */
fp_expr *fp_compile(const char *src, fp_error *err);

/* As fp_compile for src[0..len). */
fp_expr *fp_compilen(const char *src, size_t len, fp_error *err);

/* The source text the expression was compiled from (owned by the expression). */
const char *fp_source(const fp_expr *x);

/* Free a compiled expression. NULL is a no-op. */
void fp_free(fp_expr *x);

/*
 * Evaluate x with `input` (usually a resource; may be NULL = empty input) as its
 * context. *out gets the result collection, allocated in `a` (see lifetimes
 * above). Returns 0, or ERR_INVALID (a type error at run time, e.g. a string
 * added to a number or single() on many items), ERR_LIMIT (a work limit),
 * ERR_NOMEM, with *err filled when not NULL.
 */
int fp_eval(const fp_expr *x, arena *a, const json_val *input, const fp_env *env,
            fp_coll *out, fp_error *err);

/*
 * Evaluate x with one item of an earlier result (a value from the JSON tree, which
 * keeps its model type: `value.as(Quantity)` on an Observation.component works) as its
 * context, and `resource` as %resource. For the components of composite search
 * parameters, which are expressions relative to each value of the parameter's own
 * expression. Returns as fp_eval.
 */
int fp_eval_item(const fp_expr *x, arena *a, const fp_val *item, const json_val *resource,
                 fp_coll *out, fp_error *err);

/*
 * Write a collection as a JSON array with FHIR JSON conventions: booleans and
 * numbers as JSON literals (decimals keep their spelling), strings, dates and
 * times as strings (without '@'/'T' prefixes), quantities as FHIR Quantity
 * objects ({"value":1.5,"unit":"mg"}; calendar words as {"value":1,"unit":"year"}),
 * objects as they are in the resource, type() results as
 * {"namespace":"FHIR","name":"string"}. Errors stick in b.
 */
void fp_write_json(buf *b, const fp_coll *c);

/* Write one value as a JSON value (as in fp_write_json). */
void fp_write_val(buf *b, const fp_val *v);

/* The System value an item stands for in comparisons and arithmetic: a FHIR
 * Quantity object (value + UCUM code, no comparator) becomes an FP_QTY, anything
 * else is copied unchanged. For search indexing of quantities. */
void fp_val_system(const fp_val *v, fp_val *out);

/* The convenience predicate of invariants: the result as a boolean. Returns
 * 1 (true), 0 (false), -1 (empty), or ERR_INVALID when it is not one boolean. */
int fp_as_bool(const fp_coll *c);

/* `hortus fhirpath [--resource FILE.json] EXPRESSION` (src/fhirpath/cli.c). */
int fp_cli_main(int argc, char **argv);

#endif
