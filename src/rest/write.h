/*
 * write.h -- the one write pipeline: every create, update, patch and delete
 * goes through it, Bundle entries included (write.c).
 *
 *   handler / Bundle entry          plan (request thread, one read snapshot)
 *   ----------------------          ----------------------------------------
 *   rest_write{kind, type, id,  --> rights hook   (who may write this; later: SMART)
 *     resource, preconditions}      current state (store_read under the snapshot)
 *                                   preconditions (If-Match, If-None-Match: 412)
 *                                   content       (patch: transform the current one)
 *                                   bytes + op    (id, meta.versionId, lastUpdated)
 *                                   extras hook   (later: index entries, audit, outbox)
 *                                        |
 *                                   commit: store_submit, suspend ... durable
 *                                        |
 *   answer <-- classify(rc) --------  ok | lost race -> plan again | failed
 *
 * A lost race is a commit that another commit overtook between the plan's read
 * and the writer's check (ERR_CONFLICT from the store's writer thread). With a
 * precondition that is a 412; without, the write is planned again from the new
 * state, up to REST_MAX_RETRIES times, then 409. A request the store refuses at
 * once (store_submit failing synchronously) is never a race: it fails.
 *
 * Memory: a rest_write and everything it points to (bytes, extras) live in the
 * request's arena; they stay untouched until the commit's callback ran.
 */
#ifndef HORTUS_REST_WRITE_H
#define HORTUS_REST_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "fhir/model.h"
#include "fhir/outcome.h"
#include "json/json.h"
#include "rest/params.h"
#include "rest/request.h"
#include "store/store.h"

typedef enum rest_write_kind {
    RW_CREATE = 1, /* POST: the server draws the id */
    RW_UPDATE,     /* PUT: update, or create with the client's id */
    RW_PATCH,      /* PATCH: the new content is computed from the current one */
    RW_DELETE,     /* DELETE: a tombstone version; nothing when already gone */
} rest_write_kind;

/* Why a plan refused a write: the answer the client gets (its status, issue code
 * and message, or a whole OperationOutcome when `outcome` is set). */
typedef struct rest_refusal {
    unsigned status;
    oo_code code;
    const char *msg;     /* arena or static */
    const char *expr;    /* FHIRPath location or NULL */
    const oo *outcome;   /* several issues (validation), or NULL */
} rest_refusal;

/* PATCH: change `root` (a private copy of the current version) in place. 0 done,
 * 1 refused (*why filled, strings in a), or a negative ERR_* of the server. */
typedef int (*rest_transform_fn)(void *arg, arena *a, json_val *root, rest_refusal *why);

/* One commit unit: one store request and how it ended. */
typedef struct rest_commit {
    store_req req;
    int rc;   /* the store's result, set before the request resumes */
    int sync; /* 1: store_submit refused it at once (never a race) */
    rest_req *owner;
} rest_commit;

/* The resources a transaction deletes (its DELETE entries, processed first): its other
 * entries' conditions and conditional references do not find them. */
typedef struct rest_gone {
    const fhir_type **type;
    const char **id;
    size_t n, cap;
} rest_gone;

/* 1 when g (may be NULL) holds type/id. */
int rest_gone_has(const rest_gone *g, const fhir_type *type, const char *id);

typedef struct rest_write {
    /* what the client asked for (set by the handler or the Bundle entry) */
    rest_write_kind kind;
    const fhir_type *type;
    const char *id;       /* UPDATE, PATCH, DELETE (validated). CREATE: NULL -> the plan
                             draws one (again at every plan); set -> that id (a Bundle
                             whose references name it) */
    json_val *res;        /* CREATE, UPDATE: the parsed and validated resource */
    rest_precond pre;     /* If-Match / If-None-Match (or Bundle ifMatch / ifNoneMatch) */
    rest_transform_fn transform; /* PATCH */
    void *transform_arg;
    uint16_t op_index;    /* position of the op in its store request (Bundle entry) */
    const char *cond;     /* a conditional write: its search (k=v&k=v, form-encoded):
                             CREATE the If-None-Exist header; UPDATE, PATCH, DELETE the
                             query of [base]/Type?... The plan sets kind and id from
                             what it finds (id NULL until then) */
    const rest_gone *gone; /* a transaction's entry: what its DELETE entries delete, which
                              the condition does not find (NULL: nothing) */
    const rest_gone *made; /* a transaction's entry: what its POST and PUT entries write,
                              which references may name (NULL: nothing) */
    const rest_gone *deleted; /* a transaction's entry: what its DELETE entries delete,
                              which references may not name, and which may name what
                              this entry deletes (NULL: nothing) */
    const struct rest_write *group; /* a conditional delete of several: the write whose
                              id and `more` are all deleted (NULL: this one alone) */
    rest_write_kind asked; /* the kind the client asked for (a conditional update that
                              finds nothing becomes a create) */
    const char *create_id; /* a conditional write that creates: this id (a Bundle entry's,
                              named by the other entries' references); NULL: drawn */
    /* the plan's results */
    char newid[37];
    int live;             /* a current, non-deleted version existed when planned */
    uint64_t cur_vid;     /* its versionId (or the tombstone's; 0 when none) */
    int64_t cur_lu;       /* its lastUpdated, microseconds */
    int noop;             /* DELETE of what is not there: nothing to write, 204 */
    const char *existing; /* CREATE with if_none_exist that found one resource: its id
                             (noop; cur_vid, cur_lu are its version) */
    const char **more;    /* a conditional delete that finds several (--conditional-delete
                             multiple): the matches after id, deleted in the same commit */
    size_t nmore;
    store_op op;          /* the change; op.bytes in the arena */
    store_op *ops;        /* what to commit: &op alone, or op and the deletes of `more` */
    size_t nops;
    store_extra *extras;  /* added by the extras hook (rest_write_add_extra) */
    size_t nextra, extra_cap;
    store_cond *conds;    /* what must still hold at commit (idx_plan's conditions) */
    size_t ncond, cond_cap;
    rest_refusal why;     /* when the plan refused */
    const oo *notes;      /* warnings of an accepted write (a profile not known to the
                             server ...): in the answer's OperationOutcome, or NULL */
    /* a single write's commit (Bundles hold their own) */
    rest_commit commit;
} rest_write;

/* Plan results */
#define REST_PLAN_OK 0      /* w->op is ready, or w->noop */
#define REST_PLAN_REFUSED 1 /* w->why says why; nothing to write */

/* Plan w against the snapshot rd, as of `now_us` (lastUpdated of the new version).
 * Returns REST_PLAN_OK, REST_PLAN_REFUSED, or a negative ERR_* of the server. */
int rest_write_plan(const rest_ctx *ctx, store_reader *rd, arena *a, int64_t now_us,
                    rest_write *w);

/* Sort extras by database and key, so the writer thread walks each B-tree in key
 * order (neighbouring keys share pages, which then stay in the cache): done in the
 * request thread, where it costs no one else. Keys of one request are distinct. */
void rest_extras_sort(store_extra *x, size_t n);

/* Add an extra put or delete (an index entry, an AuditEvent ...) to a planned
 * write: for the extras hook. key and val are copied into a. 0 or ERR_NOMEM. */
int rest_write_add_extra(arena *a, rest_write *w, store_db db, int del, const void *key,
                         size_t key_len, const void *val, size_t val_len);

/* Run a single write (handlers of create, update, patch, delete): gate, plan,
 * commit, classify, answer. w must live in r's arena. REST_DONE or
 * REST_SUSPENDED. */
int rest_write_run(rest_req *r, rest_write *w);

/* ---- the commit step, shared with Bundles ---------------------------------------- */

/* Submit n units (each c[i].req filled) and suspend r; `resume` runs once every
 * unit has its result (c[i].rc, c[i].sync). Counts the write in flight (503 when
 * the server is stopping). REST_SUSPENDED or REST_DONE. */
int rest_commit_submit(rest_req *r, rest_commit *c, size_t n, rest_resume_fn resume);

/* How a commit ended. */
typedef enum rest_commit_result {
    REST_COMMITTED = 0, /* durable */
    REST_LOST_RACE,     /* overtaken by another commit: plan again, or 412 */
    REST_FAILED,        /* anything else: answer from rc */
} rest_commit_result;

/* The one classifier of commit results. */
rest_commit_result rest_commit_classify(int rc, int sync);

/* ---- helpers of the handlers ------------------------------------------------------ */

/* Structural validation (fhir/validate.h), then the R4 invariants of severity error
 * (fhirpath/invariants.h), as far as `level` asks: every issue into o. 0, ERR_INVALID,
 * ERR_NOMEM. What every write path validates a resource with. */
int rest_validate(arena *a, const json_val *root, const char *type, rest_validation level,
                  oo *o);

/* "full", "structure" or "off" (the `--validate` option) into *out: 0, or -1. */
int rest_validation_parse(const char *s, rest_validation *out);

/* The validation level of the server (`--validate`; full without services). */
rest_validation rest_validation_of(const rest_ctx *ctx);

/* The first issue of severity error (or fatal) of o, or NULL. */
const oo_issue *rest_first_error(const oo *o);

/* Parse and validate the request body as a resource of the route's type.
 * Returns 0 with *root set, or 1 when an error response was sent. */
int rest_parse_resource(rest_req *r, json_val **root);

/* The URL id (400 when invalid) and the preconditions of the headers (400 when
 * malformed) of a write to [base]/Type/id, into w->id and w->pre. Returns 0 to
 * go on, or 1 when an error response was queued. */
int rest_write_target(rest_req *r, rest_write *w);

/* What the condition of a conditional write (w->cond) finds under rd: w->kind, w->id,
 * w->noop and w->existing as rest_write_plan will set them under the same snapshot (a
 * transaction maps the entries' fullUrls before planning them). REST_PLAN_OK,
 * REST_PLAN_REFUSED (w->why), or ERR_*. */
int rest_write_resolve(const rest_ctx *ctx, store_reader *rd, arena *a, rest_write *w);

/* A conditional reference "Type?query" of a transaction: the one resource it finds, as
 * "Type/id" in *out, with the conditions that keep the answer true until the commit
 * added to into->conds. REST_PLAN_OK, REST_PLAN_REFUSED (none or several found, or not
 * a search: msg), or ERR_*. */
int rest_resolve_reference(const rest_ctx *ctx, store_reader *rd, arena *a, const char *ref,
                           const char **out, rest_write *into, char *msg, size_t cap);

/* The same for a conditional write to [base]/Type?query (kind UPDATE, PATCH, DELETE):
 * the query (400 when there is none) into w->cond, the type, kind and preconditions. */
int rest_write_target_cond(rest_req *r, rest_write *w, rest_write_kind kind);

/* The final stored form of a resource: resourceType, id, meta (versionId and
 * lastUpdated set, other meta members kept), then the remaining members of root
 * in their order. Minified, into out (reset first). */
void rest_build_bytes(const json_val *root, const char *type, const char *id,
                      uint64_t vid, int64_t last_updated_us, buf *out);

/* A fresh server-assigned id into out: a UUID version 7 (time-ordered, 36 chars
 * + NUL), so ids created later sort after earlier ones (per millisecond). */
void rest_new_id(char out[37]);

#endif
