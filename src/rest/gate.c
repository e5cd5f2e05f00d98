/*
 * gate.c -- one write per resource at a time inside this process, in arrival order.
 *
 * Unconditional updates, patches and deletes read the current version v and
 * submit v+1 with expect = v. When many clients write the same resource at
 * once, all but one of each group commit would lose (ERR_CONFLICT) and retry,
 * and an unlucky request could lose every round. The gate queues them
 * instead: the first writer of a key holds it until its answer is sent; the
 * others are suspended in a FIFO list and resumed one by one, each reading the
 * version its predecessor wrote. (The store's version check still guards
 * against writers outside the gate: transactions, other processes.)
 *
 *   buckets[hash(key)] -> entry{key "Patient/1", waiters: r2 -> r3} (holder r1)
 *
 * Locking: one mutex for the table. A waiter is suspended while the mutex is
 * held (so a release cannot resume it before it is suspended); resuming
 * happens after the mutex is released.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "rest/rest.h"

#define GATE_BUCKETS 1024
#define GATE_KEY_MAX (64 + 1 + REST_MAX_ID + 1)

typedef struct gate_entry {
    struct gate_entry *next;
    rest_req *head, *tail; /* waiters, linked by rest_req.gate_next */
    char key[GATE_KEY_MAX];
} gate_entry;

static gate_entry *buckets[GATE_BUCKETS];
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;

static gate_entry **slot(const char *key)
{
    size_t b = hash_u64(key, strlen(key), 0) & (GATE_BUCKETS - 1);
    gate_entry **p = &buckets[b];
    while (*p && strcmp((*p)->key, key))
        p = &(*p)->next;
    return p;
}

int rest_gate_enter(rest_req *r, const char *type, const char *id, rest_resume_fn cont)
{
    char key[GATE_KEY_MAX];
    int n = snprintf(key, sizeof key, "%s/%s", type, id);
    if (n < 0 || (size_t)n >= sizeof key)
        return 1; /* cannot happen for valid types and ids; go ungated */
    pthread_mutex_lock(&gate_mu);
    gate_entry **p = slot(key);
    if (!*p) {
        gate_entry *e = calloc(1, sizeof *e);
        if (!e) {
            pthread_mutex_unlock(&gate_mu);
            return 1; /* no memory for the queue: the store's check still holds */
        }
        memcpy(e->key, key, (size_t)n + 1);
        *p = e;
        memcpy(r->gate_key, key, (size_t)n + 1);
        r->gated = 1;
        pthread_mutex_unlock(&gate_mu);
        return 1;
    }
    if (!r->inflight) {
        if (!rest_writes_allowed(r)) {
            pthread_mutex_unlock(&gate_mu);
            rest_send_error(r, 503, OO_TRANSIENT, "the server is shutting down", NULL);
            return -1;
        }
        r->inflight = 1;
    }
    memcpy(r->gate_key, key, (size_t)n + 1);
    r->gated = 1;
    r->gate_next = NULL;
    r->resume = cont;
    r->store_rc = 0;
    if ((*p)->tail)
        (*p)->tail->gate_next = r;
    else
        (*p)->head = r;
    (*p)->tail = r;
    rest_suspend(r);
    pthread_mutex_unlock(&gate_mu);
    return 0;
}

void rest_gate_leave(rest_req *r)
{
    if (!r->gated)
        return;
    r->gated = 0;
    rest_req *next = NULL;
    pthread_mutex_lock(&gate_mu);
    gate_entry **p = slot(r->gate_key);
    gate_entry *e = *p;
    if (e) {
        next = e->head;
        if (next) {
            e->head = next->gate_next;
            if (!e->head)
                e->tail = NULL;
            next->gate_next = NULL; /* next now holds the key */
        } else {
            *p = e->next;
            free(e);
        }
    }
    pthread_mutex_unlock(&gate_mu);
    if (next)
        rest_resume(next);
}
