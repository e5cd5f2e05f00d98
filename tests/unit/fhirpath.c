/*
 * fhirpath.c -- unit tests of the FHIRPath engine: parser errors and positions,
 * evaluation over a small resource, collections, three-valued logic, limits on
 * hostile expressions, regular expressions (the PCRE dialect and patterns built to
 * exhaust a backtracking matcher), the function table, and the start-up check that
 * every search-parameter expression of the generated R4 model compiles.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/err.h"
#include "fhirpath/fhirpath.h"
#include "fhirpath/internal.h"
#include "fhirpath/spcache.h"
#include "tap.h"

static const char patient[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"active\":true,"
    "\"name\":[{\"use\":\"official\",\"family\":\"Chalmers\",\"given\":[\"Peter\",\"James\"]},"
    "{\"use\":\"usual\",\"given\":[\"Jim\"]}],"
    "\"birthDate\":\"1974-12-25\",\"_birthDate\":{\"extension\":[{\"url\":\"http://x/bt\","
    "\"valueDateTime\":\"1974-12-25T14:35:45-05:00\"}]},"
    "\"multipleBirthInteger\":2,"
    "\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"o1\",\"name\":\"Acme\"}],"
    "\"managingOrganization\":{\"reference\":\"#o1\"}}";

static arena *A;
static json_val *P;

/* evaluate expr over the patient and return the JSON text of the result
 * (a static buffer), or "ERR:<code>" on failure */
static const char *ev(const char *expr)
{
    static char out[4096];
    fp_error e;
    fp_expr *x = fp_compile(expr, &e);
    if (!x) {
        snprintf(out, sizeof out, "ERR:%d", e.code);
        return out;
    }
    fp_coll c;
    int rc = fp_eval(x, A, P, NULL, &c, &e);
    if (rc) {
        snprintf(out, sizeof out, "ERR:%d", rc);
    } else {
        buf b = BUF_INIT;
        fp_write_json(&b, &c);
        snprintf(out, sizeof out, "%s", buf_cstr(&b));
        buf_free(&b);
    }
    fp_free(x);
    return out;
}

static void test_parse_errors(void)
{
    fp_error e;
    fp_expr *x = fp_compile("name.given.", &e);
    ok(!x && e.code == ERR_INVALID, "trailing dot is a syntax error");
    is_int(e.pos, 11, "error position at the end");
    x = fp_compile("name.foo(", &e);
    ok(!x && e.code == ERR_INVALID, "unknown function is a compile error");
    is_int(e.pos, 5, "position of the unknown function");
    ok(strstr(e.msg, "foo") != NULL, "message names the function: %s", e.msg);
    x = fp_compile("1 +\n  (2", &e);
    ok(!x && e.line == 2, "line of an error on the second line (%d)", e.line);
    x = fp_compile("substring()", &e);
    ok(!x && strstr(e.msg, "argument"), "argument count checked: %s", e.msg);
    x = fp_compile("'abc", &e);
    ok(!x && strstr(e.msg, "unterminated"), "unterminated string: %s", e.msg);
    x = fp_compile("x is Foo.Bar", &e);
    ok(!x, "unknown namespace for a type is an error");
    x = fp_compile("", &e);
    ok(!x, "empty expression is an error");
    x = fp_compile("@2012-13-01", &e);
    ok(!x, "invalid month in a date literal");
    x = fp_compile("name.given.matches('(a')", &e);
    ok(!x && strstr(e.msg, "regular expression") && e.pos == 19,
       "a literal regex is compiled with the expression: %s at %ld", e.msg, e.pos);
}

static void test_paths(void)
{
    is_str(ev("name.given"), "[\"Peter\",\"James\",\"Jim\"]", "path over arrays");
    is_str(ev("Patient.name.family"), "[\"Chalmers\"]", "type name at the path start");
    is_str(ev("Observation.status"), "[]", "other type name selects nothing");
    is_str(ev("name[1].given"), "[\"Jim\"]", "indexer");
    is_str(ev("name.where(use = 'usual').given"), "[\"Jim\"]", "where()");
    is_str(ev("multipleBirth"), "[2]", "choice element by its bare name");
    is_str(ev("multipleBirth is integer"), "[true]", "choice type from the model");
    is_str(ev("birthDate.extension.url"), "[\"http://x/bt\"]", "primitive extension");
    is_str(ev("birthDate < @2000-01-01"), "[true]", "date comparison");
    is_str(ev("managingOrganization.resolve().name"), "[\"Acme\"]",
           "resolve() into contained");
    is_str(ev("name.given.combine(name.family).count()"), "[4]",
           "non-lambda argument starts from the context");
    is_str(ev("name.select(given.first())"), "[\"Peter\",\"Jim\"]", "select()");
    is_str(ev("id.type().name"), "[\"String\"]", "Resource.id is System.String");
    is_str(ev("active.type().namespace"), "[\"FHIR\"]", "FHIR primitive namespace");
}

static void test_logic(void)
{
    is_str(ev("true and {}"), "[]", "true and empty is empty");
    is_str(ev("false and {}"), "[false]", "false and empty is false");
    is_str(ev("{} or true"), "[true]", "empty or true is true");
    is_str(ev("true xor true"), "[false]", "xor");
    is_str(ev("{} implies false"), "[]", "empty implies false is empty");
    is_str(ev("false implies {}"), "[true]", "false implies anything");
    is_str(ev("(1|2|3).count()"), "[3]", "union");
    is_str(ev("(1|1|2).count()"), "[2]", "union removes duplicates");
    is_str(ev("1 = 1.0"), "[true]", "integer equals decimal");
    is_str(ev("'a' = {}"), "[]", "equality with empty is empty");
    is_str(ev("'A  b' ~ 'a b'"), "[true]", "string equivalence");
    is_str(ev("(1|2) ~ (2|1)"), "[true]", "collection equivalence ignores order");
    is_str(ev("2 + 3 * 4"), "[14]", "precedence");
    is_str(ev("7 div 2"), "[3]", "div");
    is_str(ev("-7 mod 2"), "[-1]", "mod keeps the sign");
    is_str(ev("1 / 2"), "[0.5]", "integer division gives a decimal");
    is_str(ev("'a' & {} & 'b'"), "[\"ab\"]", "& treats empty as ''");
    is_str(ev("(1|2) + 1"), "ERR:-2", "arithmetic on many items is an error");
    is_str(ev("2147483647 + 1"), "ERR:-2", "integer overflow is an error");
    is_str(ev("1 / 0"), "[]", "division by zero is empty");
}

static void test_functions(void)
{
    is_str(ev("'abcdef'.substring(2, 3)"), "[\"cde\"]", "substring");
    is_str(ev("'a,b,c'.split(',').count()"), "[3]", "split");
    is_str(ev("('a'|'b').join('-')"), "[\"a-b\"]", "join");
    is_str(ev("'abc123'.replaceMatches('[0-9]', '-')"), "[\"abc---\"]", "replaceMatches");
    is_str(ev("'2023'.matches('\\\\d+')"), "[true]", "\\d in a regex");
    is_str(ev("'hello'.encode('base64').decode('base64')"), "[\"hello\"]", "base64 round trip");
    is_str(ev("'a]b'.matches('^[\\\\]a]+b$')"), "[true]", "escaped ] inside a bracket");
    is_str(ev("'a-b'.matchesFull('[a\\\\-]+b')"), "[true]", "escaped - inside a bracket");
    is_str(ev("'Pat ient'.matchesFull('[^\\\\s]+')"), "[false]", "\\s inside a negated bracket");
    is_str(ev("'Patient.name'.matchesFull('[^\\\\s\\\\.\\\\[\\\\]{}]{1,64}"
              "(\\\\.[^\\\\s\\\\.\\\\[\\\\]{}]{1,64})*')"),
           "[true]", "the R4 eld-19 path pattern");
    is_str(ev("1 is Citation"), "[false]", "is() of an unknown type is false (dom-r4b)");
    is_str(ev("1.as(Citation)"), "ERR:-2", "as() of an unknown type is an error");
    is_str(ev("(3|1|2).sort()"), "[1,2,3]", "sort()");
    is_str(ev("(5|3|9|1|7|2|8|4|6|0|15|11|13|12|14|10).sort()"),
           "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]", "sort() of 16 items (merge levels)");
    is_str(ev("(5|3|9|1|7|2|8|4|6|0).sort(-$this).first()"), "[9]", "sort(-$this) of 10 items");
    is_str(ev("(1|2|3).sort(-$this)"), "[3,2,1]", "sort descending");
    is_str(ev("(1|2|3).aggregate($this + $total, 0)"), "[6]", "aggregate()");
    is_str(ev("iif(true, 'y', 'n')"), "[\"y\"]", "iif()");
    is_str(ev("'1.5'.toDecimal() + 1"), "[2.5]", "toDecimal()");
    is_str(ev("'x'.toInteger()"), "[]", "toInteger() of a non-number is empty");
    is_str(ev("(2).power(10)"), "[1024]", "power() of integers is an integer");
    is_str(ev("1.587.lowBoundary(2)"), "[1.58]", "lowBoundary (decimal library)");
    is_str(ev("descendants().where($this is HumanName).count()"), "[2]", "descendants()");
    is_str(ev("(1|2).single()"), "ERR:-2", "single() on two items is an error");
    is_str(ev("%ucum"), "[\"http://unitsofmeasure.org\"]", "%%ucum");
    is_str(ev("%resource.id"), "[\"p1\"]", "%%resource");
    is_str(ev("%nosuch"), "ERR:-2", "unknown environment variable");
    is_str(ev("1 'mg' + 2 'mg'"), "[{\"value\":3,\"unit\":\"mg\",\"system\":"
                                  "\"http://unitsofmeasure.org\",\"code\":\"mg\"}]",
           "quantity result as a FHIR Quantity");
    is_str(ev("@2012-01-31 + 1 month"), "[\"2012-02-29\"]", "calendar arithmetic");
}

static void test_html_checks(void)
{
    is_str(ev("'<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Hi</p></div>'.htmlChecks()"),
           "[true]", "htmlChecks() accepts a plain narrative");
    is_str(ev("'<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>x()</script></div>'"
              ".htmlChecks()"),
           "[false]", "htmlChecks() rejects a script");
    is_str(ev("'<div xmlns=\"http://www.w3.org/1999/xhtml\"><p onclick=\"x()\">a</p></div>'"
              ".htmlChecks()"),
           "[false]", "htmlChecks() rejects event handlers");
    is_str(ev("'<div xmlns=\"http://www.w3.org/1999/xhtml\">  </div>'.htmlChecks()"),
           "[false]", "htmlChecks() wants some content (txt-2)");
    is_str(ev("'<p>no div</p>'.htmlChecks()"), "[false]", "htmlChecks() wants an xhtml div");
    is_str(ev("'a'.memberOf('http://x/vs')"), "ERR:-8", "memberOf() is reported as unsupported");
}

static void test_strings_and_collections(void)
{
    static const char *const cases[][2] = {
        {"'abc'.substring(5)", "[]"},
        {"'abcabc'.lastIndexOf('c')", "[5]"},
        {"'abc'.replace('', '-')", "[\"-a-b-c-\"]"},
        {"'a,,b'.split(',').count()", "[3]"},
        {"'h\u00e9llo'.length()", "[5]"},
        {"'h\u00e9llo'.indexOf('l')", "[2]"},
        {"'h\u00e9llo'.substring(1, 2)", "[\"\u00e9l\"]"},
        {"'ab'.encode('hex').decode('hex')", "[\"ab\"]"},
        {"'<a href=\"x\">'.escape('html').unescape('html')", "[\"<a href=\\\"x\\\">\"]"},
        {"'  x y  '.trim()", "[\"x y\"]"},
        {"'1.0'.toInteger()", "[]"},
        {"'T'.toBoolean()", "[true]"},
        {"1.5.toInteger()", "[]"},
        {"(1|2|3).skip(1).take(1)", "[2]"},
        {"(1|2|3).exclude(2)", "[1,3]"},
        {"(1|2|2|3).intersect(2|3)", "[2,3]"},
        {"(1|2).combine(2).count()", "[3]"},
        {"(1|2|3).isDistinct()", "[true]"},
        {"{}.count()", "[0]"},
        {"(true|false).allTrue()", "[false]"},
        {"(1|2|3).tail().first()", "[2]"},
        {"(1|2|3).last()", "[3]"},
        {"(1|2|3)[5]", "[]"},
        {"(1|2|3).where($index > 0).count()", "[2]"},
        {"(1|2|3).all($this > 0)", "[true]"},
        {"(1|2).exists($this > 5)", "[false]"},
        {"'a'.not()", "[false]"},
        {"true.not()", "[false]"},
        {"(true and false).not()", "[true]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_str(ev(cases[i][0]), cases[i][1], "%s", cases[i][0]);
}

/* Function table must be sorted for the binary search. */
static void test_func_table(void)
{
    static const char *const names[] = {"abs", "where", "union", "unescape", "toString",
                                        "today", "lastIndexOf", "matchesFull", "ofType"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const fp_func *f = fp_func_find(names[i], strlen(names[i]));
        ok(f && !strcmp(f->name, names[i]), "function %s found", names[i]);
    }
    const fp_func *t;
    size_t n = fp_func_table(&t);
    size_t bad = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (strcmp(t[i].name, t[i + 1].name) >= 0)
            bad++;
    ok(n > 90 && bad == 0, "function table of %zu entries strictly sorted", n);
    size_t found = 0;
    for (size_t i = 0; i < n; i++)
        found += fp_func_find(t[i].name, strlen(t[i].name)) == &t[i];
    is_int(found, n, "every function is found by name");
    ok(fp_func_find("wher", 4) == NULL, "prefix of a name is not a function");
    ok(fp_func_find("wheres", 6) == NULL, "extension of a name is not a function");
}

static void test_limits(void)
{
    /* deep nesting */
    size_t n = 5000;
    char *deep = malloc(2 * n + 2);
    memset(deep, '(', n);
    deep[n] = '1';
    memset(deep + n + 1, ')', n);
    deep[2 * n + 1] = 0;
    fp_error e;
    fp_expr *x = fp_compile(deep, &e);
    ok(!x && e.code == ERR_TOOBIG, "deep nesting rejected: %s", e.msg);
    free(deep);
    /* long chain of unary minus */
    char *neg = malloc(n + 2);
    memset(neg, '-', n);
    neg[n] = '1';
    neg[n + 1] = 0;
    x = fp_compile(neg, &e);
    ok(!x && e.code == ERR_TOOBIG, "unary chain rejected");
    free(neg);
    /* runaway repetition is stopped by the work limit */
    is_str(ev("(1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|"
              "9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|"
              "3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10)))))))"),
           "ERR:-9", "exponential select() hits the step limit");
    /* string doubling is stopped by the string/step limits */
    const char *dbl = "(1|2|3|4|5|6|7|8|9|10|11|12|13|14|15|16|17|18|19|20|21|22|23|24|25|26|"
                      "27|28|29|30).aggregate($total + $total, 'xxxxxxxxxxxxxxxx')";
    const char *r = ev(dbl);
    ok(!strcmp(r, "ERR:-9"), "string doubling stopped (%s)", r);
    is_str(ev("name.repeat(name)"), "[]", "repeat() terminates");
    {
        fp_env menv = {0};
        menv.max_memory = 1 << 20;
        fp_error me;
        fp_coll mc;
        fp_expr *mx = fp_compile("(1|2|3|4|5|6|7|8|9|10|11|12|13|14|15|16|17|18|19|20)"
                                 ".aggregate($total + $total, 'xxxxxxxxxxxxxxxx')", &me);
        ok(mx && fp_eval(mx, A, P, &menv, &mc, &me) == ERR_LIMIT && strstr(me.msg, "memory"),
           "memory limit: %s", me.msg);
        fp_free(mx);
    }
    x = fp_compile("1", &e);
    fp_env env = {0};
    env.max_steps = 3;
    fp_coll c;
    fp_expr *y = fp_compile("name.given.where($this = 'x')", &e);
    ok(y && fp_eval(y, A, P, &env, &c, &e) == ERR_LIMIT, "max_steps from the environment");
    ok(strstr(e.msg, "limit") != NULL, "limit message: %s", e.msg);
    fp_free(x);
    fp_free(y);
}

/* Compile and evaluate expr over the patient: 0 (result in *out as JSON text, a static
 * buffer), or the error code with e->msg; *compiled tells which stage failed. */
static int ev_full(const char *expr, fp_error *e, int *compiled, const char **out)
{
    static char text[4096];
    fp_expr *x = fp_compile(expr, e);
    *compiled = x != NULL;
    *out = "";
    if (!x)
        return e->code;
    fp_coll c;
    int rc = fp_eval(x, A, P, NULL, &c, e);
    if (rc == 0) {
        buf b = BUF_INIT;
        fp_write_json(&b, &c);
        snprintf(text, sizeof text, "%s", buf_cstr(&b));
        buf_free(&b);
        *out = text;
    }
    fp_free(x);
    return rc;
}

/* head + n copies of ch + tail, NUL-terminated (malloc'd). */
static char *repeat_lit(const char *head, char ch, size_t n, const char *tail)
{
    size_t hn = strlen(head), tn = strlen(tail);
    char *s = malloc(hn + n + tn + 1);
    if (!s)
        return NULL;
    memcpy(s, head, hn);
    memset(s + hn, ch, n);
    memcpy(s + hn + n, tail, tn + 1);
    return s;
}

/* The FHIRPath regex dialect as PCRE2 runs it: what the old POSIX translation did,
 * and what only a PCRE engine can do. */
static void test_regex_dialect(void)
{
    static const char *const cases[][2] = {
        {"'2023'.matches('\\\\d+')", "[true]"},
        {"'ab'.matches('\\\\d')", "[false]"},
        {"'ab'.matchesFull('\\\\D+')", "[true]"},
        {"'a_1'.matchesFull('\\\\w+')", "[true]"},
        {"'a-1'.matchesFull('\\\\w+')", "[false]"},
        {"'-+'.matchesFull('\\\\W+')", "[true]"},
        {"'a \\t\\nb'.matchesFull('a\\\\s+b')", "[true]"},
        {"'ab'.matchesFull('\\\\S+')", "[true]"},
        {"'\\u0663'.matches('\\\\d')", "[false]"}, /* \d is ASCII, not Unicode Nd */
        {"'m'.matches('[a-z]')", "[true]"},
        {"'M'.matches('[^A-Z]')", "[false]"},
        {"'a]b'.matches('^[\\\\]a]+b$')", "[true]"},
        {"'a-b'.matchesFull('[a\\\\-]+b')", "[true]"},
        {"'x^'.matchesFull('[x^]+')", "[true]"},
        {"'Pat ient'.matchesFull('[^\\\\s]+')", "[false]"},
        {"'a1 b2'.matches('[[:alpha:]][[:digit:]]')", "[true]"},
        {"'abc'.matches('^b')", "[false]"},
        {"'abc'.matches('b')", "[true]"},
        {"'abc'.matches('c$')", "[true]"},
        {"'abc\\n'.matches('c$')", "[false]"}, /* $ is the very end, as in POSIX */
        {"'abc'.matchesFull('b')", "[false]"},
        {"'abc'.matchesFull('abc|b')", "[true]"},
        {"'ab'.matchesFull('a|ab')", "[true]"}, /* the anchor at the end backtracks */
        {"'ab'.matchesFull('(a)|(ab)')", "[true]"},
        {"'a\\nb'.matches('a.b')", "[true]"}, /* single-line mode: . matches \n */
        {"'\u00e9'.matchesFull('.')", "[true]"}, /* . is one code point (UTF-8) */
        {"'\u00e4\u00f6\u00fc'.matchesFull('[\u00e0-\u00ff]{3}')", "[true]"},
        {"'\u65e5\u672c'.matchesFull('\\\\x{65e5}.')", "[true]"},
        {"'ABC'.matches('abc')", "[false]"},
        {"'ABC'.matches('(?i)abc')", "[true]"},
        {"'aaa'.replaceMatches('a+?', 'b')", "[\"bbb\"]"},
        {"'price: 10'.matches('(?<=: )\\\\d+')", "[true]"},
        {"'foobar'.matches('foo(?!bar)')", "[false]"},
        {"'abab'.matchesFull('(ab)\\\\1')", "[true]"},
        {"'8'.matches('8++')", "[true]"}, /* possessive */
        {"'abc123'.replaceMatches('[0-9]', '-')", "[\"abc---\"]"},
        {"'John Smith'.replaceMatches('(\\\\w+) (\\\\w+)', '$2, $1')", "[\"Smith, John\"]"},
        {"'ab'.replaceMatches('(a)|(b)', '[$1$2]')", "[\"[a][b]\"]"},
        {"'abc'.replaceMatches('x*', '-')", "[\"-a-b-c-\"]"},
        {"'baaa'.replaceMatches('a*', '-')", "[\"-b--\"]"}, /* as Perl, Java, JavaScript */
        {"'\u00e9a'.replaceMatches('x*', '-')", "[\"-\u00e9-a-\"]"}, /* whole characters */
        {"'abc'.replaceMatches('^', '>')", "[\">abc\"]"},
        {"'a.b'.replaceMatches('\\\\.', '$$')", "[\"a$$b\"]"},
        {"'abc'.replaceMatches('b', '$9')", "[\"ac\"]"},
        {"'abc'.matches('')", "[true]"},
        {"'abc'.replaceMatches('', '-')", "[\"abc\"]"},
        {"{}.matches('a')", "[]"},
        {"'a'.matches({})", "[]"},
        {"('a'|'b').matches('a')", "ERR:-2"},
        {"'2023'.matches('\\\\d' & '+')", "[true]"}, /* pattern built at evaluation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_str(ev(cases[i][0]), cases[i][1], "%s", cases[i][0]);

    /* the value regexes of the R4 primitives are the longest real patterns there are
     * (dateTime's is 207 bytes): all compile within the limits, and work */
    const fhir_type *types;
    size_t nt = fhir_types_all(&types), nre = 0, bad = 0, longest = 0;
    for (size_t i = 0; i < nt; i++) {
        if (!types[i].regex)
            continue;
        nre++;
        pcre2_code *re;
        char msg[160];
        size_t len = strlen(types[i].regex);
        longest = len > longest ? len : longest;
        if (fp_regex_compile(types[i].regex, len, 1, &re, msg, sizeof msg)) {
            bad++;
            printf("# %s: %s\n", types[i].name, msg);
            continue;
        }
        pcre2_code_free(re);
    }
    ok(nre > 10 && bad == 0, "the regexes of %zu R4 primitives compile", nre);
    ok(longest * 10 < FP_REGEX_MAX_PATTERN, "the longest, %zu bytes, is far below the limit",
       longest);
    const fhir_type *dt = fhir_type_find("dateTime", 8);
    pcre2_code *dre = NULL;
    char dmsg[160];
    int drc = dt && dt->regex ? fp_regex_compile(dt->regex, strlen(dt->regex), 1, &dre, dmsg,
                                                 sizeof dmsg)
                              : -1;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    ok(drc == 0 && md &&
           pcre2_match(dre, (PCRE2_SPTR) "2015-02-07T13:28:17-05:00", 25, 0, 0, md, NULL) >= 0 &&
           pcre2_match(dre, (PCRE2_SPTR) "2015-02-07T13:28", 16, 0, 0, md, NULL) ==
               PCRE2_ERROR_NOMATCH,
       "the dateTime regex as matchesFull() compiles it");
    pcre2_match_data_free(md);
    pcre2_code_free(dre);

    fp_error e;
    fp_expr *x = fp_compile("name.given.matches('(a')", &e);
    ok(!x && e.code == ERR_INVALID && strstr(e.msg, "invalid regular expression") &&
           strstr(e.msg, "offset"),
       "PCRE2's reason and offset in the message: %s", e.msg);
    x = fp_compile("'x'.matches('\\\\C')", &e);
    ok(!x && e.code == ERR_INVALID, "\\C (one byte of a character) is refused: %s", e.msg);
    x = fp_compile("'x'.matches('\\xff')", &e);
    ok(!x, "a pattern that is not UTF-8 is refused");
    int compiled;
    const char *out;
    int rc = ev_full("'x'.matches('(' & 'a')", &e, &compiled, &out);
    ok(compiled && rc == ERR_INVALID && strstr(e.msg, "invalid regular expression"),
       "a bad pattern built at evaluation is an evaluation error: %s", e.msg);
    char *nested = repeat_lit("'a'.matches('a' & '", '(', 100, "')");
    rc = ev_full(nested, &e, &compiled, &out);
    ok(compiled && rc == ERR_LIMIT && strstr(e.msg, "parentheses"),
       "a limit met by a pattern built at evaluation is ERR_LIMIT: %s", e.msg);
    free(nested);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Patterns built to make a backtracking matcher (or glibc's regcomp, which the
 * engine used before) spend exponential time or memory. Each must end at once with
 * a compile error or a "too costly" evaluation error. Before PCRE2 the first one
 * took 1.3 GB and 6 s in this build and returned true; the next never ended. */
static void test_regex_hostile(void)
{
    long rss0 = peak_rss_kb();
    double t0 = now_s();
    fp_error e;
    int compiled;
    const char *out;
    char expr[256];

    for (int plus = 20; plus <= 30; plus += 10) {
        snprintf(expr, sizeof expr, "'8'.matches('8%.*s')", plus,
                 "++++++++++++++++++++++++++++++");
        int rc = ev_full(expr, &e, &compiled, &out);
        ok(!compiled && rc == ERR_INVALID && strstr(e.msg, "regular expression"),
           "'8' and %d '+' is a compile error: %s", plus, e.msg);
        snprintf(expr, sizeof expr, "'8'.matches('8' & '%.*s')", plus,
                 "++++++++++++++++++++++++++++++");
        rc = ev_full(expr, &e, &compiled, &out);
        ok(compiled && rc == ERR_INVALID && strstr(e.msg, "regular expression"),
           "the same pattern built at evaluation: an evaluation error: %s", e.msg);
    }

    long grew = peak_rss_kb() - rss0;
    ok(grew < 32 * 1024, "peak RSS grew by %ld KiB compiling them (glibc: 1.3 GB)", grew);

    char *s = repeat_lit("", 'a', 40, "");
    snprintf(expr, sizeof expr, "'%sb'.matches('(a+)+$')", s);
    int rc = ev_full(expr, &e, &compiled, &out);
    ok(rc == ERR_LIMIT && strstr(e.msg, "too costly") && strstr(e.msg, "match limit"),
       "(a+)+$ against 40 a's and a b: %s", e.msg);
    snprintf(expr, sizeof expr, "'%sb'.replaceMatches('(a+)+$', 'x')", s);
    rc = ev_full(expr, &e, &compiled, &out);
    ok(rc == ERR_LIMIT && strstr(e.msg, "too costly"), "the same in replaceMatches(): %s",
       e.msg);
    snprintf(expr, sizeof expr, "'%s%s'.matches('(a|aa)*c')", s, s);
    rc = ev_full(expr, &e, &compiled, &out);
    ok(rc == 0 && !strcmp(out, "[false]"),
       "(a|aa)*c unanchored on 80 a's: no 'c', so false at once (%s)", rc ? e.msg : out);
    snprintf(expr, sizeof expr, "'%s%scx'.matchesFull('(a|aa)*c')", s, s);
    rc = ev_full(expr, &e, &compiled, &out);
    ok(rc == ERR_LIMIT && strstr(e.msg, "too costly"),
       "(a|aa)*c anchored on 80 a's, c and x: %s", e.msg);
    free(s);

    size_t depth = 1000;
    char *nest = malloc(2 * depth + 32);
    size_t k = 0;
    k += (size_t)snprintf(nest, 32, "'a'.matches('");
    memset(nest + k, '(', depth);
    nest[k + depth] = 'a';
    memset(nest + k + depth + 1, ')', depth);
    memcpy(nest + k + 2 * depth + 1, "')", 3);
    rc = ev_full(nest, &e, &compiled, &out);
    ok(!compiled && rc == ERR_TOOBIG && strstr(e.msg, "parentheses"),
       "1000 nested groups: %s", e.msg);
    free(nest);

    /* a pattern of exactly the maximum length compiles, one byte more does not */
    char *longx = repeat_lit("'a'.matches('", 'a', FP_REGEX_MAX_PATTERN, "')");
    rc = ev_full(longx, &e, &compiled, &out);
    ok(rc == 0 && !strcmp(out, "[false]"), "a pattern of %u bytes compiles (%s)",
       FP_REGEX_MAX_PATTERN, rc ? e.msg : out);
    free(longx);
    longx = repeat_lit("'a'.matches('", 'a', FP_REGEX_MAX_PATTERN + 1, "')");
    rc = ev_full(longx, &e, &compiled, &out);
    ok(!compiled && rc == ERR_TOOBIG && strstr(e.msg, "longer"), "%u bytes: %s",
       FP_REGEX_MAX_PATTERN + 1, e.msg);
    free(longx);

    /* Each start position rescans the rest of a 20,000-byte subject: quadratic, with
     * hardly any backtracking, so only the step accounting stops it (glibc took 17 s
     * for (a|c)*[0-9] over 100,000 bytes). */
    char *big = repeat_lit("'", 'a', 20000, "'.matches('a*[0-9]')");
    rc = ev_full(big, &e, &compiled, &out);
    ok(rc == ERR_LIMIT && strstr(e.msg, "too costly") && strstr(e.msg, "work limit"),
       "a*[0-9] over 20,000 a's: %s", e.msg);
    free(big);
    big = repeat_lit("'", 'a', 20000, "'.replaceMatches('a*[0-9]', '')");
    rc = ev_full(big, &e, &compiled, &out);
    ok(rc == ERR_LIMIT && strstr(e.msg, "work limit"), "the same in replaceMatches(): %s",
       e.msg);
    free(big);
    big = repeat_lit("'", 'a', 60000, "'.matches('(a|c)*[0-9]')");
    rc = ev_full(big, &e, &compiled, &out);
    ok(rc == ERR_LIMIT && strstr(e.msg, "too costly") && strstr(e.msg, "depth"),
       "a group repeated 60,000 times: %s", e.msg);
    free(big);
    big = repeat_lit("'", 'a', 40000, "'.matches('((((((((((a|c))))))))))*[0-9]')");
    rc = ev_full(big, &e, &compiled, &out);
    ok(rc == ERR_LIMIT && strstr(e.msg, "too costly") && strstr(e.msg, "heap"),
       "40,000 repeats of ten nested groups: %s", e.msg);
    free(big);
    /* but a long subject under a linear pattern is fine */
    big = repeat_lit("'", 'a', 60000, "'.matchesFull('a*')");
    rc = ev_full(big, &e, &compiled, &out);
    ok(rc == 0 && !strcmp(out, "[true]"), "a* over 60,000 a's (%s)", rc ? e.msg : out);
    free(big);
    big = repeat_lit("'", 'a', 20000, "1'.matches('(a|c)*[0-9]')");
    rc = ev_full(big, &e, &compiled, &out);
    ok(rc == 0 && !strcmp(out, "[true]"), "a group repeated 20,000 times that matches (%s)",
       rc ? e.msg : out);
    free(big);

    /* generous bounds: this build has AddressSanitizer, whose quarantine keeps freed
     * memory (the heap-limit case alone frees 8 MiB of backtracking frames) */
    double dt = now_s() - t0;
    grew = peak_rss_kb() - rss0;
    ok(dt < 10, "the hostile patterns took %.2f s", dt);
    ok(grew < 150 * 1024, "peak RSS grew by %ld KiB over all of them", grew);

    /* the step accounting uses the evaluation's budget, whatever the caller set */
    fp_env env = {0};
    env.max_steps = 1000;
    fp_coll c;
    big = repeat_lit("'", 'a', 1000, "'.matches('a*[0-9]')");
    fp_expr *x = fp_compile(big, &e);
    ok(x && fp_eval(x, A, P, &env, &c, &e) == ERR_LIMIT && strstr(e.msg, "1000 steps"),
       "fp_env.max_steps bounds the matcher too: %s", e.msg);
    fp_free(x);
    free(big);
}

/* JSON numbers may carry an exponent (1.5e2 is valid FHIR JSON): they must still
 * be numbers and quantities to FHIRPath, not strings. */
static void test_json_exponents(void)
{
    static const char obs[] =
        "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"w\"},"
        "\"valueQuantity\":{\"value\":1.5e2,\"system\":\"http://unitsofmeasure.org\","
        "\"code\":\"mg\"}}";
    json_val *saved = P, *o;
    json_error je;
    ok(json_parse(A, obs, sizeof obs - 1, JSON_FHIR, &o, &je) == 0, "observation parses");
    P = o;
    is_str(ev("Observation.value.value > 149"), "[true]", "exponent number compares as a number");
    is_str(ev("Observation.value > 0.1 'g'"), "[true]", "exponent value makes a quantity");
    P = saved;
}

static void test_bundle_and_env(void)
{
    static const char bundle[] =
        "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":["
        "{\"fullUrl\":\"http://h/fhir/Patient/a\",\"resource\":{\"resourceType\":\"Patient\","
        "\"id\":\"a\",\"gender\":\"female\"}},"
        "{\"fullUrl\":\"urn:uuid:42\",\"resource\":{\"resourceType\":\"Observation\",\"id\":\"o\","
        "\"status\":\"final\",\"subject\":{\"reference\":\"Patient/a\"},"
        "\"performer\":[{\"reference\":\"urn:uuid:42\"}],"
        "\"valueQuantity\":{\"value\":1.50,\"system\":\"http://unitsofmeasure.org\","
        "\"code\":\"g\"}}}]}";
    json_val *b;
    json_error je;
    ok(json_parse(A, bundle, sizeof bundle - 1, 0, &b, &je) == 0, "bundle parses");
    fp_error e;
    fp_coll c;
    fp_expr *x = fp_compile("entry.resource.ofType(Observation).subject.resolve().gender", &e);
    ok(x && fp_eval(x, A, b, NULL, &c, &e) == 0 && c.n == 1 && c.v[0].kind == FP_STR &&
           !strcmp(c.v[0].u.s.p, "female"),
       "resolve() a relative reference inside a Bundle");
    fp_free(x);
    x = fp_compile("entry.resource.ofType(Observation).performer.resolve().status", &e);
    ok(x && fp_eval(x, A, b, NULL, &c, &e) == 0 && c.n == 1, "resolve() by fullUrl");
    fp_free(x);
    x = fp_compile("entry[1].resource.subject.where(resolve() is Patient).reference", &e);
    ok(x && fp_eval(x, A, P, NULL, &c, &e) == 0 && c.n == 0,
       "no subject on a Patient: nothing to resolve");
    fp_free(x);
    x = fp_compile("'http://other/fhir/Practitioner/9/_history/2'.resolve().id", &e);
    ok(x && fp_eval(x, A, b, NULL, &c, &e) == 0 && c.n == 1 && c.v[0].u.s.n == 1 &&
           c.v[0].u.s.p[0] == '9',
       "an outside reference resolves to a typed stub");
    fp_free(x);
    x = fp_compile("'Practitioner/9'.resolve() is Practitioner", &e);
    ok(x && fp_eval(x, A, b, NULL, &c, &e) == 0 && fp_as_bool(&c) == 1,
       "the stub has the reference's type");
    fp_env ex = {0};
    ex.exact_resolve = 1;
    ok(x && fp_eval(x, A, b, &ex, &c, &e) == 0 && c.n == 0, "exact_resolve: no stubs");
    fp_free(x);
    x = fp_compile("'Nonsense/9'.resolve()", &e);
    ok(x && fp_eval(x, A, b, NULL, &c, &e) == 0 && c.n == 0, "unknown type: no stub");
    fp_free(x);
    x = fp_compile("entry[1].resource.value = 1500 'mg'", &e);
    ok(x && fp_eval(x, A, b, NULL, &c, &e) == 0 && fp_as_bool(&c) == 1,
       "a FHIR Quantity compares as a System Quantity across units");
    fp_free(x);
    x = fp_compile("entry[1].resource.value", &e);
    fp_val sys;
    ok(x && fp_eval(x, A, b, NULL, &c, &e) == 0 && c.n == 1 && c.v[0].kind == FP_OBJ,
       "valueQuantity is an object item");
    if (c.n == 1) {
        fp_val_system(&c.v[0], &sys);
        ok(sys.kind == FP_QTY && !strcmp(sys.u.q.unit, "g"), "fp_val_system gives the Quantity");
    }
    fp_free(x);
    x = fp_compile("entry[1].resource.value.value", &e);
    buf out = BUF_INIT;
    if (x && fp_eval(x, A, b, NULL, &c, &e) == 0)
        fp_write_json(&out, &c);
    is_str(buf_cstr(&out), "[1.50]", "a decimal keeps its spelling");
    buf_free(&out);
    fp_free(x);
    json_val *limit;
    ok(json_parse(A, "[2,3]", 5, 0, &limit, &je) == 0, "variable value parses");
    fp_var vars[] = {{"limit", limit}};
    fp_env env = {0};
    env.vars = vars;
    env.nvars = 1;
    x = fp_compile("%limit.count() = 2 and %limit.last() = 3", &e);
    ok(x && fp_eval(x, A, b, &env, &c, &e) == 0 && fp_as_bool(&c) == 1,
       "caller-defined variables");
    fp_free(x);
    env.now_ms = 86400000; /* 1970-01-02T00:00:00Z */
    x = fp_compile("today() = @1970-01-02 and now() = now()", &e);
    ok(x && fp_eval(x, A, b, &env, &c, &e) == 0 && fp_as_bool(&c) == 1,
       "now()/today() from the environment, stable within one evaluation");
    fp_free(x);
}

/* One compiled expression shared by two threads, each with its own arena. */
typedef struct thread_arg {
    const fp_expr *x;
    int bad;
} thread_arg;

static void *eval_thread(void *p)
{
    thread_arg *t = p;
    arena *a = arena_new(0);
    for (int i = 0; i < 2000; i++) {
        fp_coll c;
        fp_error e;
        if (fp_eval(t->x, a, P, NULL, &c, &e) || c.n != 1 || c.v[0].kind != FP_STR ||
            strcmp(c.v[0].u.s.p, "Peter,James,Jim"))
            t->bad++;
        arena_reset(a);
    }
    arena_free(a);
    return NULL;
}

static void test_threads(void)
{
    fp_error e;
    fp_expr *x = fp_compile("name.given.where($this.matches('^[A-Z]')).join(',')", &e);
    thread_arg t1 = {x, 0}, t2 = {x, 0};
    pthread_t a, b;
    ok(x && !pthread_create(&a, NULL, eval_thread, &t1) &&
           !pthread_create(&b, NULL, eval_thread, &t2),
       "two threads evaluate one expression");
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    is_int(t1.bad + t2.bad, 0, "same results in both threads");
    fp_free(x);
}

static void test_search_params(void)
{
    const fhir_search_param *const *sp;
    size_t n = fhir_search_params_all(&sp);
    ok(n > 1000, "the model has R4 search parameters (%zu)", n);
    size_t with = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (!sp[i]->expression)
            continue;
        with++;
        fp_error e;
        fp_expr *x = fp_compile(sp[i]->expression, &e);
        if (!x) {
            failed++;
            printf("# %s: %s at %ld: %s\n", sp[i]->code, sp[i]->expression, e.pos, e.msg);
        }
        fp_free(x);
        for (uint8_t k = 0; k < sp[i]->ncomponents; k++) {
            if (!sp[i]->component_exprs[k])
                continue;
            x = fp_compile(sp[i]->component_exprs[k], &e);
            if (!x) {
                failed++;
                printf("# %s component %s: %s\n", sp[i]->code, sp[i]->component_exprs[k], e.msg);
            }
            fp_free(x);
        }
    }
    ok(with > 1000, "%zu parameters have an expression", with);
    is_int(failed, 0, "every search-parameter expression compiles");

    /* the start-up cache compiles the same set and finds them by parameter */
    fp_sp_cache *spc;
    fp_error e;
    int rc = fp_sp_cache_build(&spc, &e);
    ok(rc == 0, "fp_sp_cache_build succeeds%s%s", rc ? ": " : "", rc ? e.msg : "");
    if (rc)
        return;
    ok(fp_sp_cache_count(spc) >= with, "cache holds %zu expressions", fp_sp_cache_count(spc));
    const fhir_search_param *name = fhir_search_param_find("Patient", "name");
    const fp_expr *x = name ? fp_sp_cache_get(spc, name) : NULL;
    ok(x && !strcmp(fp_source(x), name->expression), "lookup by parameter: %s",
       x ? fp_source(x) : "(none)");
    fp_coll c;
    ok(x && fp_eval(x, A, P, NULL, &c, &e) == 0 && c.n == 2, "Patient.name over the patient");
    const fhir_search_param *cvq =
        fhir_search_param_find("Observation", "component-code-value-quantity");
    ok(cvq && cvq->ncomponents == 2 && fp_sp_cache_component(spc, cvq, 1) != NULL,
       "composite component compiled");
    ok(fp_sp_cache_component(spc, cvq, 7) == NULL, "component out of range");
    fp_sp_cache_free(spc);
}

int main(void)
{
    A = arena_new(0);
    json_error je;
    if (json_parse(A, patient, sizeof patient - 1, 0, &P, &je)) {
        printf("not ok 1 - test resource parses: %s\n", je.msg);
        return 1;
    }
    test_parse_errors();
    test_paths();
    test_logic();
    test_functions();
    test_func_table();
    test_strings_and_collections();
    test_html_checks();
    test_limits();
    test_regex_dialect();
    test_regex_hostile();
    test_json_exponents();
    test_bundle_and_env();
    test_threads();
    test_search_params();
    arena_free(A);
    return tap_done();
}
