/*
 * tenant.c -- the tenant registry (src/auth/tenant.c): names, numbering, the file's
 * format and damage, and a server's view that picks up a tenant added after it read
 * the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/tenant.h"
#include "base/err.h"
#include "tap.h"

static void write_file(const char *dir, const char *text)
{
    char p[600];
    snprintf(p, sizeof p, "%s/" TENANT_FILE, dir);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

int main(void)
{
    char msg[300];
    static const char *const good[] = {"north", "st-marys", "a", "h0spital-2",
                                       "abcdefghijklmnopqrstuvwxyz012345"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ok(tenant_name_check(good[i], msg, sizeof msg) == 0, "name '%s' is allowed", good[i]);
    static const char *const bad[] = {"",
                                      "Patient",
                                      "patient",
                                      "observation",
                                      "metadata",
                                      "auth",
                                      "-x",
                                      "x-",
                                      "a_b",
                                      "a.b",
                                      "a/b",
                                      "UPPER",
                                      "abcdefghijklmnopqrstuvwxyz0123456"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ok(tenant_name_check(bad[i], msg, sizeof msg) == ERR_INVALID && msg[0],
           "name '%s' is refused (%s)", bad[i], msg);
    ok(tenant_segment("north", 5) && !tenant_segment("metadata", 8) &&
           !tenant_segment("Patient", 7) && !tenant_segment("-x", 2) && !tenant_segment("", 0),
       "router shape: lower case, not metadata");

    char dir[] = "/tmp/hortus-tenant-unit-XXXXXX";
    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return tap_done();
    }
    tenant_entry e[TENANT_MAX];
    size_t n = 99;
    ok(tenant_load(dir, e, &n, msg, sizeof msg) == 0 && n == 0, "no file: no tenants");
    tenant_reg *g = NULL;
    ok(tenant_reg_open(dir, &g, msg, sizeof msg) == 0, "a server's view of no file");
    uint32_t num = 0;
    ok(!tenant_reg_find(g, "north", 5, &num), "unknown before it is added");
    ok(tenant_add(dir, "north", &num, msg, sizeof msg) == 0 && num == 1, "first tenant: 1");
    ok(tenant_add(dir, "south", &num, msg, sizeof msg) == 0 && num == 2, "second tenant: 2");
    ok(tenant_add(dir, "north", &num, msg, sizeof msg) == ERR_EXISTS && num == 1,
       "a name twice: ERR_EXISTS with its number");
    ok(tenant_add(dir, "Bad", &num, msg, sizeof msg) == ERR_INVALID, "a bad name is refused");
    ok(tenant_reg_find(g, "south", 5, &num) && num == 2, "the view re-reads the new file");
    ok(tenant_reg_find(g, "north", 5, &num) && num == 1, "and knows the earlier one");
    ok(!tenant_reg_find(g, "nort", 4, &num) && !tenant_reg_find(g, "northx", 6, &num),
       "names match whole");
    ok(tenant_load(dir, e, &n, msg, sizeof msg) == 0 && n == 2 && e[0].num == 1 &&
           !strcmp(e[0].name, "north") && e[1].num == 2 && !strcmp(e[1].name, "south"),
       "the file lists both, in order");

    /* numbers are never reused: a file whose highest number is 7 gives 8 next */
    write_file(dir, "# comment\n3 north\n7 south\n");
    ok(tenant_add(dir, "east", &num, msg, sizeof msg) == 0 && num == 8, "after 7 comes 8");
    ok(tenant_reg_find(g, "east", 4, &num) && num == 8, "the view reads east");

    /* damage: reported, and the server's view keeps what it knew */
    static const char *const damaged[] = {"1 north\n1 south\n", "1 north\n2 north\n", "0 zero\n",
                                          "256 big\n",          "x north\n",          "1\n",
                                          "1 Upper\n",          "1  north\n"};
    for (size_t i = 0; i < sizeof damaged / sizeof damaged[0]; i++) {
        write_file(dir, damaged[i]);
        ok(tenant_load(dir, e, &n, msg, sizeof msg) == ERR_INVALID, "damaged file %zu: %s", i, msg);
    }
    ok(tenant_add(dir, "west", &num, msg, sizeof msg) == ERR_INVALID, "no add onto a damaged file");
    ok(!tenant_reg_find(g, "nope", 4, &num), "an unknown name reads the damaged file");
    ok(tenant_reg_find(g, "east", 4, &num) && num == 8 && tenant_reg_find(g, "north", 5, &num) &&
           num == 3,
       "and the view keeps the tenants it knew");
    tenant_reg_free(g);

    char d2[600];
    ok(tenant_dir_of("lmdb:/x/y", d2, sizeof d2) == 0 && !strcmp(d2, "/x/y") &&
           tenant_dir_of("/x/z", d2, sizeof d2) == 0 && !strcmp(d2, "/x/z") &&
           tenant_dir_of("postgres://h/db", d2, sizeof d2) == ERR_UNSUPPORTED,
       "the directory of a store location");

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return tap_done();
}
