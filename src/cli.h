/*
 * cli.h -- the entry points of the hortus subcommands, one per subsystem.
 * Each takes argv with argv[0] = the subcommand name and returns the exit code
 * (0 success, 1 failure, 2 usage error).
 */
#ifndef HORTUS_CLI_H
#define HORTUS_CLI_H

#define HORTUS_VERSION "0.1.0"

int version_main(int argc, char **argv); /* src/base/version.c */
int serve_main(int argc, char **argv);   /* src/rest/server.c: serve */
int synth_main(int argc, char **argv);   /* src/synth/synth_cli.c: generate */
int check_main(int argc, char **argv);       /* src/index/check_cli.c: check */
int import_main(int argc, char **argv);      /* src/rest/import.c: import */
int tenant_main(int argc, char **argv);      /* src/auth/tenant.c: tenant add|list */
int client_main(int argc, char **argv);      /* src/auth/clients.c: client */

int val_cli_main(int argc, char **argv);   /* src/fhir/validate.c: validate */
int fp_cli_main(int argc, char **argv);    /* src/fhirpath/cli.c: fhirpath */

#endif
