/*
 * gate.c -- the per-resource write gate (the contract is in gate.h).
 *
 * Locking: one mutex for the table. A waiter is parked while the mutex is
 * held (so a release cannot wake it before it is parked); waking happens after
 * the mutex is released.
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "rest/gate.h"

#define GATE_BUCKETS 1024
#define GATE_KEY_MAX (sizeof ((rest_req *)0)->gate_key)

typedef struct gate_entry {
    struct gate_entry *next;
    rest_req *head, *tail; /* waiters, linked by rest_req.gate_next */
    char key[GATE_KEY_MAX];
} gate_entry;

struct rest_gate {
    rest_gate_hooks hooks;
    pthread_mutex_t mu;
    unsigned nkeys;
    gate_entry *buckets[GATE_BUCKETS];
};

rest_gate *rest_gate_new(const rest_gate_hooks *hooks)
{
    rest_gate *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->hooks = *hooks;
    pthread_mutex_init(&g->mu, NULL);
    return g;
}

void rest_gate_free(rest_gate *g)
{
    if (!g)
        return;
    for (size_t b = 0; b < GATE_BUCKETS; b++) {
        gate_entry *e = g->buckets[b];
        while (e) {
            gate_entry *n = e->next;
            free(e);
            e = n;
        }
    }
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static gate_entry **slot(rest_gate *g, const char *key)
{
    size_t b = hash_u64(key, strlen(key), 0) & (GATE_BUCKETS - 1);
    gate_entry **p = &g->buckets[b];
    while (*p && strcmp((*p)->key, key))
        p = &(*p)->next;
    return p;
}

int rest_gate_enter(rest_gate *g, rest_req *r, uint32_t tenant, const char *type,
                    const char *id, rest_resume_fn cont)
{
    assert(!r->gated); /* a request enters one gate once */
    char key[GATE_KEY_MAX];
    int n = snprintf(key, sizeof key, "%u/%s/%s", (unsigned)tenant, type, id);
    if (n < 0 || (size_t)n >= sizeof key)
        return 1; /* cannot happen for valid types and ids; go ungated */
    pthread_mutex_lock(&g->mu);
    gate_entry **p = slot(g, key);
    if (!*p) {
        gate_entry *e = calloc(1, sizeof *e);
        if (!e) {
            pthread_mutex_unlock(&g->mu);
            return 1; /* no memory for the queue: the store's check still holds */
        }
        memcpy(e->key, key, (size_t)n + 1);
        *p = e;
        g->nkeys++;
        memcpy(r->gate_key, key, (size_t)n + 1);
        r->gated = 1;
        pthread_mutex_unlock(&g->mu);
        return 1;
    }
    memcpy(r->gate_key, key, (size_t)n + 1);
    r->gated = 1;
    r->gate_waiting = 1;
    r->gate_next = NULL;
    r->resume = cont;
    if ((*p)->tail)
        (*p)->tail->gate_next = r;
    else
        (*p)->head = r;
    (*p)->tail = r;
    g->hooks.park(r);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

void rest_gate_leave(rest_gate *g, rest_req *r)
{
    if (!r->gated)
        return;
    r->gated = 0;
    rest_req *next = NULL;
    pthread_mutex_lock(&g->mu);
    gate_entry **p = slot(g, r->gate_key);
    gate_entry *e = *p;
    assert(e); /* a holder's key has its entry until the holder leaves */
    if (e && r->gate_waiting) {
        /* a waiter that goes away: out of the queue, and nobody's turn changes */
        r->gate_waiting = 0;
        rest_req *prev = NULL;
        for (rest_req *q = e->head; q; prev = q, q = q->gate_next) {
            if (q != r)
                continue;
            if (prev)
                prev->gate_next = q->gate_next;
            else
                e->head = q->gate_next;
            if (e->tail == q)
                e->tail = prev;
            break;
        }
        r->gate_next = NULL;
    } else if (e) {
        next = e->head;
        if (next) {
            e->head = next->gate_next;
            if (!e->head)
                e->tail = NULL;
            next->gate_next = NULL; /* next now holds the key */
            next->gate_waiting = 0;
        } else {
            *p = e->next;
            free(e);
            g->nkeys--;
        }
    }
    pthread_mutex_unlock(&g->mu);
    if (next)
        g->hooks.wake(next);
}

unsigned rest_gate_keys(rest_gate *g)
{
    pthread_mutex_lock(&g->mu);
    unsigned n = g->nkeys;
    pthread_mutex_unlock(&g->mu);
    return n;
}
