/*
 * gate.h -- one write per resource at a time inside this process, in arrival
 * order (gate.c).
 *
 * Unconditional updates, patches and deletes read the current version v and
 * submit v+1 with expect = v. When many clients write the same resource at
 * once, all but one of each group commit would lose and re-plan, and an unlucky
 * request could lose every round. The gate queues them instead: the first
 * writer of a key holds it until its answer is sent; the others wait in a FIFO
 * list and are resumed one by one, each reading the version its predecessor
 * wrote. (The store's version check still guards against writers outside the
 * gate: transactions, other processes.)
 *
 *   buckets[hash(key)] -> entry{key "0/Patient/1", waiters: r2 -> r3} (holder r1)
 *
 * Keys are tenant/type/id. How a waiter is parked and woken is the caller's
 * (the hooks): the server suspends and resumes the connection, the unit tests
 * record the order.
 */
#ifndef HORTUS_REST_GATE_H
#define HORTUS_REST_GATE_H

#include <stdint.h>

#include "rest/request.h"

typedef struct rest_gate rest_gate;

typedef struct rest_gate_hooks {
    void (*park)(rest_req *r); /* called with the gate's lock held: must not block */
    void (*wake)(rest_req *r); /* called without the lock */
} rest_gate_hooks;

/* A new, empty gate; NULL on ENOMEM. Free with rest_gate_free() once no request
 * holds or waits for it. */
rest_gate *rest_gate_new(const rest_gate_hooks *hooks);
void rest_gate_free(rest_gate *g);

/* Enter the gate of (tenant, type, id). Returns 1 when r may go on now (it holds
 * the gate), 0 when r was queued and parked (`cont` becomes r->resume and runs
 * when it is r's turn; the handler returns REST_SUSPENDED). r must be counted
 * in flight already (rest_writes_allowed), so shutdown waits for its turn. */
int rest_gate_enter(rest_gate *g, rest_req *r, uint32_t tenant, const char *type,
                    const char *id, rest_resume_fn cont);

/* Leave the gate: when r holds it, the next waiter (if any) now holds it and is
 * woken; when r still waits, it leaves the queue and nobody is woken; no-op when
 * r entered none. The server calls this when r's answer is queued or its
 * connection ends. */
void rest_gate_leave(rest_gate *g, rest_req *r);

/* How many keys have an entry (held or waited for): 0 when idle. */
unsigned rest_gate_keys(rest_gate *g);

#endif
