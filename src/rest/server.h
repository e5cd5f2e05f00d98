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

/* Where `hortus serve` listens unless told: this machine only, until
 * authorisation exists (a server that anyone on the network could write to
 * must be a deliberate choice: --bind 0.0.0.0). */
#define REST_DEFAULT_BIND "127.0.0.1"

typedef struct rest_server_opts {
    const char *bind;     /* address to listen on (numeric or a name); NULL = default */
    unsigned port;        /* 0 = any free port (see rest_server_port) */
    unsigned threads;     /* HTTP threads; 0 = one per core */
    const char *base_url; /* public FHIR base, e.g. "https://x.org/fhir"; NULL = from Host */
} rest_server_opts;

/* Listen and serve. 0 and *out; or ERR_NOMEM / ERR_IO with a message in msg
 * (address in use, unknown address ...). */
int rest_server_start(const rest_server_opts *o, const rest_services *svc, rest_server **out,
                      char *msg, size_t msgsz);

/* The port actually bound, and the FHIR base URL as bound ("http://127.0.0.1:8080/fhir";
 * valid until rest_server_stop). */
unsigned rest_server_port(const rest_server *srv);
const char *rest_server_url(const rest_server *srv);

/* Stop accepting, answer every write in flight, close connections, free. NULL ok. */
void rest_server_stop(rest_server *srv);

#endif
