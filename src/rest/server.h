/*
 * server.h -- start and stop the hortus HTTP server (server.c), for `hortus
 * serve` (serve.c) and tests.
 *
 * The server borrows the services (store, compiled search parameters): they must
 * stay alive until rest_server_stop() returns. rest_server_stop() answers every
 * write in flight first, however long its commit takes, then closes every
 * connection.
 */
#ifndef HORTUS_REST_SERVER_H
#define HORTUS_REST_SERVER_H

#include <stddef.h>

#include "rest/request.h"

typedef struct rest_server rest_server;

/* Where `hortus serve` listens unless told: this machine only. Without
 * authorisation a server anyone on the network could read and write must be a
 * deliberate choice: rest_server_start refuses any other address unless
 * auth_configured or insecure is set. */
#define REST_DEFAULT_BIND "127.0.0.1"

typedef struct rest_server_opts {
    const char *bind;     /* address to listen on (numeric or a name); NULL = default */
    unsigned port;        /* 0 = any free port (see rest_server_port) */
    unsigned threads;     /* HTTP threads; 0 = one per core */
    const char *base_url; /* public FHIR base, e.g. "https://x.org/fhir"; NULL = from Host */
    /* The hook for authorisation (issue 12, built elsewhere): 1 once requests are
     * authorised, which makes an address other than loopback acceptable. 0 today. */
    int auth_configured;
    int insecure; /* 1: serve a non-loopback address without authorisation anyway */
    /* TLS: both PEM texts (NUL-terminated, borrowed for the call), or both NULL for
     * plain HTTP. Checked by rest_tls_load (tls.h) before they get here. */
    const char *tls_cert_pem, *tls_key_pem;
    /* The edge (limits.h names the defaults; 0 = the default): */
    unsigned request_timeout_s; /* a request must arrive whole within this */
    unsigned idle_timeout_s;    /* a connection with no traffic for this is closed */
    unsigned max_connections;   /* open connections at once */
    unsigned max_per_client;    /* open connections from one client address */
} rest_server_opts;

/* 1 when addr (numeric, or a name resolved as rest_server_start would) is a
 * loopback address only this machine reaches, 0 when it is another, -1 when it
 * does not resolve (rest_server_start then fails to bind it, naming --bind). */
int rest_bind_is_loopback(const char *addr);

/* Listen and serve. 0 and *out; or ERR_NOMEM / ERR_IO with a message in msg
 * (address in use, unknown address, TLS unavailable ...), or ERR_INVALID with a
 * message when a non-loopback address is asked for without auth_configured or
 * insecure (nothing is bound then). */
int rest_server_start(const rest_server_opts *o, const rest_services *svc, rest_server **out,
                      char *msg, size_t msgsz);

/* The port actually bound, and the FHIR base URL as bound ("http://127.0.0.1:8080/fhir";
 * valid until rest_server_stop). */
unsigned rest_server_port(const rest_server *srv);
const char *rest_server_url(const rest_server *srv);

/* Stop accepting, answer every write in flight, close connections, free. NULL ok. */
void rest_server_stop(rest_server *srv);

#endif
