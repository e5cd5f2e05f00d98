/*
 * internal.h -- what the parts of the FHIRPath engine share: the AST, the
 * evaluation context and the function table. Not for use outside src/fhirpath/.
 *
 * An fp_expr owns one arena holding its source copy and every node. A node is
 * one of the kinds below; the tree for  name.where(use = 'x').given  is
 *
 *   MEMBER "given"
 *     focus: CALL where  (fn resolved at compile time)
 *              focus: MEMBER "name" (focus NULL = the current $this)
 *              args[0]: BINOP '='  args: MEMBER "use", LITERAL 'x'
 *
 * `focus` is the expression left of the '.', NULL at the start of a path, where
 * the input is the evaluation's current $this.
 */
#ifndef HORTUS_FHIRPATH_INTERNAL_H
#define HORTUS_FHIRPATH_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "fhirpath/fhirpath.h"

typedef enum fp_nkind {
    N_LITERAL = 1, /* lit */
    N_EMPTY,       /* {} */
    N_MEMBER,      /* focus.name */
    N_CALL,        /* focus.fn(args) */
    N_INDEX,       /* focus[args[0]] */
    N_THIS,        /* $this */
    N_INDEXVAR,    /* $index */
    N_TOTAL,       /* $total */
    N_VAR,         /* %name */
    N_NEG,         /* -args[0] */
    N_BINOP,       /* args[0] op args[1] */
    N_IS,          /* args[0] is type */
    N_AS,          /* args[0] as type */
} fp_nkind;

typedef enum fp_op {
    OP_MUL = 1, OP_DIV, OP_IDIV, OP_MOD,
    OP_ADD, OP_SUB, OP_CONCAT,
    OP_UNION,
    OP_LT, OP_GT, OP_LE, OP_GE,
    OP_EQ, OP_EQUIV, OP_NE, OP_NEQUIV,
    OP_IN, OP_CONTAINS,
    OP_AND, OP_OR, OP_XOR, OP_IMPLIES,
} fp_op;

typedef struct fp_node fp_node;
typedef struct fp_ctx fp_ctx;
typedef struct fp_func fp_func;

/* A type specifier as written: optional namespace and a name. */
typedef struct fp_typespec {
    const char *ns;   /* "FHIR", "System" or NULL when not qualified */
    const char *name; /* NUL-terminated */
    const fhir_type *ft; /* the model type of that name, found once when parsed (or NULL) */
} fp_typespec;

struct fp_node {
    uint8_t kind; /* fp_nkind */
    uint8_t op;   /* fp_op for N_BINOP */
    uint8_t nargs;
    uint32_t pos; /* byte offset in the source */
    fp_node *focus;
    fp_node **args;
    const fp_func *fn;
    const char *name; /* N_MEMBER, N_VAR, N_CALL: NUL-terminated */
    size_t name_len;
    fp_typespec type; /* N_IS / N_AS, and type arguments of is()/as()/ofType() */
    const fhir_type *ntype; /* N_MEMBER named like a type (Patient.x): that type */
    pcre2_code *re;         /* matches()/replaceMatches() with a literal pattern: compiled */
    fp_val lit;       /* N_LITERAL */
};

typedef struct fp_relist {
    pcre2_code *re;
    struct fp_relist *next;
} fp_relist;

struct fp_expr {
    arena *a;
    const char *src;
    size_t len;
    fp_node *root;
    fp_relist *regexes; /* compiled literal patterns, freed by fp_free() */
    const fhir_type *hint; /* type named at the start of the path (Patient.name): the
                              likely type of the input, checked before a model lookup */
};

/* Evaluation state of one fp_eval call. */
struct fp_ctx {
    arena *a;
    const fp_env *env;
    const json_val *input;    /* evaluated resource (context) */
    const json_val *resource; /* %resource */
    const json_val *root_res; /* %rootResource */
    const fp_val *this_v;     /* $this, NULL at top level before any iteration */
    fp_coll this_c;           /* $this as a collection (the context at top level) */
    int64_t index;            /* $index */
    const fp_coll *total;     /* $total inside aggregate() */
    const fp_coll *call_in;   /* input of the call being run (context of its args) */
    const fp_node *cur;       /* node being evaluated (error positions) */
    uint64_t steps, max_steps;
    size_t mem0, max_mem; /* arena_used() at the start, and the allowed growth */
    int depth;
    fp_error *err;
    const char *src;
    fp_dt now; /* now() fixed per evaluation */
    int64_t now_ms;
    int now_set;
};

/* Function implementation: the input collection, the node (for lambda args),
 * evaluated args (NULL entries for lambda args), output. */
typedef int (*fp_fn_impl)(fp_ctx *c, const fp_node *nd, const fp_coll *in,
                          const fp_coll *args, fp_coll *out);

struct fp_func {
    const char *name;
    uint8_t min_args, max_args;
    uint8_t lambda_mask; /* bit i: argument i is evaluated per item (not up front) */
    uint8_t type_arg;    /* 1: the single argument is a type specifier */
    fp_fn_impl impl;
};

/* --- parse.c ------------------------------------------------------------- */
int fp_parse(fp_expr *x, fp_error *err);

/* --- funcs.c ------------------------------------------------------------- */
const fp_func *fp_func_find(const char *name, size_t n);
/* The whole table, sorted by name (for tests and documentation). */
size_t fp_func_table(const fp_func **table);
/* Compile a FHIRPath regex with PCRE2 (UTF-8, single-line mode, the FP_REGEX_* limits);
 * full anchors it at both ends (matchesFull). 0 and *out (free it with
 * pcre2_code_free()), or ERR_INVALID (bad syntax), ERR_TOOBIG (a limit) or ERR_NOMEM,
 * with msg filled. */
int fp_regex_compile(const char *re, size_t n, int full, pcre2_code **out, char *msg,
                     size_t msgn);

/* --- eval.c: helpers the function library uses ---------------------------- */
int fp_eval_node(fp_ctx *c, const fp_node *nd, const fp_coll *in, fp_coll *out);
/* Evaluate a lambda argument with $this = *item (and $index). */
int fp_eval_with_this(fp_ctx *c, const fp_node *nd, const fp_val *item, int64_t index,
                      fp_coll *out);
int fp_fail(fp_ctx *c, int code, const fp_node *nd, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int fp_step(fp_ctx *c, uint64_t n, const fp_node *nd);

/* Collection building (arena backed). */
typedef struct fp_list {
    fp_val *v;
    size_t n, cap;
} fp_list;
int fp_list_push(fp_ctx *c, fp_list *l, const fp_val *v);
int fp_list_append(fp_ctx *c, fp_list *l, const fp_coll *src);
static inline fp_coll fp_list_coll(const fp_list *l)
{
    fp_coll r = {l->v, l->n};
    return r;
}

/* Children of an object item: member `name` (choice types, _name extensions,
 * resource type names handled), appended to out. */
int fp_children_named(fp_ctx *c, const fp_val *item, const char *name, size_t n,
                      fp_list *out);
/* All children of an item (for children()/descendants()). */
int fp_children_all(fp_ctx *c, const fp_val *item, fp_list *out);
/* Convert a JSON value of model type t (may be NULL) into an item. */
int fp_from_json(fp_ctx *c, const json_val *j, const json_val *ext, const fhir_type *t,
                 fp_val *out);
/* Item for a whole resource/object node. */
void fp_obj_val(const json_val *j, const fhir_type *t, fp_val *out);

/* Value semantics shared by operators and functions. */
int fp_val_equal(const fp_val *x, const fp_val *y);   /* 1, 0, or -1 (empty) */
int fp_val_equiv(const fp_val *x, const fp_val *y);   /* 1 or 0 */
int fp_val_compare(fp_ctx *c, const fp_node *nd, const fp_val *x, const fp_val *y,
                   int *res); /* 0 and *res<0/0/>0, 1 = not comparable (empty), <0 error */
int fp_coll_equal(const fp_coll *x, const fp_coll *y); /* 1, 0, -1 empty */
int fp_coll_equiv(const fp_coll *x, const fp_coll *y);
int fp_singleton_bool(fp_ctx *c, const fp_node *nd, const fp_coll *in, int *res);
/* Primitive view of an item: converts FHIR quantity objects to FP_QTY etc. */
int fp_prim(fp_ctx *c, const fp_val *v, fp_val *out);
/* The System/FHIR type name of a value for type() and is(). */
void fp_type_of(const fp_val *v, const char **ns, const char **name);
/* exact_prim: FHIR primitive types match only themselves (as()/ofType()), while
 * is() follows the model's derivation (code is a string). */
int fp_is_type(const fp_val *v, const fp_typespec *t, int exact_prim);
/* 1 when the type specifier names a FHIR or System type. */
int fp_type_known(const fp_typespec *t);
int fp_str_of(fp_ctx *c, const fp_val *v, const char **s, size_t *n); /* toString */

/* Result helpers. */
int fp_ret_bool(fp_ctx *c, fp_coll *out, int b);
int fp_ret_int(fp_ctx *c, fp_coll *out, int64_t i);
int fp_ret_str(fp_ctx *c, fp_coll *out, const char *s, size_t n);
int fp_ret_val(fp_ctx *c, fp_coll *out, const fp_val *v);

#endif
