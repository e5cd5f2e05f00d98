/*
 * validate.c -- structural validation of FHIR R4 JSON against the generated model.
 *
 * Shape: a recursive walk that mirrors the JSON tree. Each object is checked
 * against one fhir_type: every member key is looked up (first among the next few
 * elements in definition order, the order serialisers write, then in the
 * generated hash), values are dispatched on the element's type kind, and two
 * small bitmaps (value seen / "_name" seen, indexed by element position) answer
 * "was a required element present" and "did value[x] appear twice" without a
 * second pass over the members.
 *
 *   members of {"resourceType":"Patient","name":[{"given":["A",null]}],"_name":..}
 *     resourceType -> skipped (checked by the caller)
 *     name         -> elem Patient.name (HumanName, 0..*): must be an array; each
 *                     item an object walked as HumanName at "Patient.name[i]"
 *     given        -> elem HumanName.given (string, 0..*): items checked as string;
 *                     a null item needs a non-null "_given" item at the same index
 *
 * The FHIRPath location is kept as a stack of frames pointing at the keys and
 * at static names; it is formatted only when an issue is reported, so walking a
 * valid resource allocates and formats nothing.
 *
 * Primitive formats are hand-written recognisers of the R4 regexes (the regexes
 * use \S and friends that POSIX regex lacks); each comment quotes its regex. Two
 * deliberate additions to the regexes: FHIR JSON forbids empty strings, so the
 * empty string is rejected for every string primitive (uri's \S* would accept it),
 * and dates must exist in the calendar ("dates SHALL be valid dates": 2023-02-30
 * is rejected). Codes with a required binding are checked against the value set
 * when the model could enumerate it; narratives get a tag scan (xhtml_problem).
 */
#include "fhir/validate.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"

#define VAL_PATH_MAX 512
#define VAL_MAX_FRAMES (VAL_MAX_DEPTH * 4)
#define VAL_SEEN_BITS 256 /* elements tracked per object; the largest R4 type has 54 */

typedef struct vframe {
    const char *sep; /* ".", "" or ".ofType(" */
    const char *s;   /* name (not NUL-terminated: n bytes) */
    size_t n;        /* name length, or the array index */
    int is_index;
} vframe;

typedef struct vctx {
    oo *out;
    size_t errors; /* issues added by this call */
    int full;      /* VAL_MAX_ISSUES reached: stop walking */
    int depth;
    int contained;                /* > 0 while inside a contained resource */
    const fhir_type *t_resource;  /* "Resource": elements holding whole resources */
    const fhir_type *t_extension; /* "Extension": ext-1 */
    const fhir_type *t_concept;   /* "CodeableConcept": required bindings */
    size_t nframes;
    vframe frames[VAL_MAX_FRAMES];
    char path[VAL_PATH_MAX + 1];
} vctx;

/* ---- location path ---------------------------------------------------------- */
/*
 * The location is a stack of frames (separator + name, or an array index) that
 * point into the JSON tree and the static model tables; it becomes text only when
 * an issue is reported, so a valid resource never formats a path.
 *
 *   frames: ["" "Bundle"] ["." "entry"] [index 0] ["." "resource"] ["." "name"]
 *   text:   Bundle.entry[0].resource.name
 */

static size_t path_push(vctx *c, const char *sep, const char *s, size_t n)
{
    size_t old = c->nframes;
    if (c->nframes < VAL_MAX_FRAMES) {
        vframe *f = &c->frames[c->nframes];
        f->sep = sep;
        f->s = s;
        f->n = n;
        f->is_index = 0;
    }
    c->nframes++;
    return old;
}

static size_t path_push_index(vctx *c, size_t i)
{
    size_t old = c->nframes;
    if (c->nframes < VAL_MAX_FRAMES) {
        vframe *f = &c->frames[c->nframes];
        f->n = i;
        f->is_index = 1;
    }
    c->nframes++;
    return old;
}

static void path_pop(vctx *c, size_t old)
{
    c->nframes = old;
}

/* Append s[0..n) to the location text; a cut at VAL_PATH_MAX backs up to a UTF-8
 * character boundary so the location stays valid UTF-8 (it ends up in JSON). */
static void path_put(char *out, size_t *len, const char *s, size_t n)
{
    if (*len + n > VAL_PATH_MAX) {
        n = VAL_PATH_MAX - *len;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out + *len, s, n);
    *len += n;
}

/* The current location as text in c->path (truncated at VAL_PATH_MAX). */
static const char *path_text(vctx *c)
{
    size_t len = 0, nf = c->nframes < VAL_MAX_FRAMES ? c->nframes : VAL_MAX_FRAMES;
    for (size_t i = 0; i < nf; i++) {
        const vframe *f = &c->frames[i];
        if (f->is_index) {
            char tmp[24];
            int k = snprintf(tmp, sizeof tmp, "[%zu]", f->n);
            path_put(c->path, &len, tmp, (size_t)k);
        } else {
            path_put(c->path, &len, f->sep, strlen(f->sep));
            path_put(c->path, &len, f->s, f->n);
        }
    }
    if (nf < c->nframes)
        path_put(c->path, &len, "...", 3);
    c->path[len] = 0;
    return c->path;
}

/* ---- issues ----------------------------------------------------------------- */

static void issue(vctx *c, oo_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void issue(vctx *c, oo_code code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (c->full)
        return;
    if (c->errors >= VAL_MAX_ISSUES) {
        c->full = 1;
        oo_add(c->out, OO_ERROR, OO_TOO_COSTLY, "Too many validation issues; validation stopped",
               NULL);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    oo_add(c->out, OO_ERROR, code, msg, c->nframes ? path_text(c) : NULL);
    c->errors++;
}

/* A value quoted in a diagnostic: at most 60 bytes, never splitting UTF-8. */
static int quote_len(const char *s, size_t n)
{
    if (n <= 60)
        return (int)n;
    size_t k = 60;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return (int)k;
}

/* ---- primitive recognisers ---------------------------------------------------- */

typedef enum prim {
    P_NONE = 0,
    P_BOOLEAN,
    P_INTEGER,
    P_POSITIVE,
    P_UNSIGNED,
    P_DECIMAL,
    P_STRING,
    P_CODE,
    P_ID,
    P_URI,
    P_OID,
    P_UUID,
    P_BASE64,
    P_DATE,
    P_DATETIME,
    P_INSTANT,
    P_TIME,
    P_XHTML,
} prim;

static prim prim_of(const fhir_type *t)
{
    const char *n = t->name;
    if (t->kind != FHIR_PRIMITIVE)
        return P_NONE;
    switch (n[0]) {
    case 'b':
        return strcmp(n, "boolean") == 0 ? P_BOOLEAN : P_BASE64;
    case 'c':
        return strcmp(n, "code") == 0 ? P_CODE : P_URI; /* canonical */
    case 'd':
        if (strcmp(n, "date") == 0)
            return P_DATE;
        return strcmp(n, "dateTime") == 0 ? P_DATETIME : P_DECIMAL;
    case 'i':
        if (strcmp(n, "id") == 0)
            return P_ID;
        return strcmp(n, "integer") == 0 ? P_INTEGER : P_INSTANT;
    case 'm':
        return P_STRING; /* markdown */
    case 'o':
        return P_OID;
    case 'p':
        return P_POSITIVE;
    case 's':
        return P_STRING;
    case 't':
        return P_TIME;
    case 'u':
        if (strcmp(n, "unsignedInt") == 0)
            return P_UNSIGNED;
        return strcmp(n, "uuid") == 0 ? P_UUID : P_URI; /* uri, url */
    case 'x':
        return P_XHTML;
    }
    return P_STRING;
}

/* Java regex \s: [ \t\n\x0B\f\r] */
static int is_ws(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* string, markdown: [ \r\n\t\S]+, and no character below U+0020 but tab, CR and LF
 * (R4 2.24.0.1: "Strings SHALL NOT contain Unicode character points below 32, except
 * for ..."); not empty, and not whitespace only (a value that says nothing) */
static int chk_string(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 && ch != '\t' && ch != '\r' && ch != '\n')
            return 0;
        seen |= ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n';
    }
    return seen;
}

/* code: [^\s]+(\s[^\s]+)* -- tokens separated by single whitespace characters */
static int chk_code(const char *s, size_t n)
{
    if (n == 0 || is_ws((unsigned char)s[0]) || is_ws((unsigned char)s[n - 1]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (is_ws((unsigned char)s[i]) && is_ws((unsigned char)s[i - 1]))
            return 0;
    return 1;
}

/* id: [A-Za-z0-9\-\.]{1,64} */
int val_is_id(const char *s, size_t n)
{
    if (!s || n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || is_digit(ch) || ch == '-' ||
              ch == '.'))
            return 0;
    }
    return 1;
}

/* uri, url, canonical: \S* (and not empty: FHIR JSON has no empty strings) */
static int chk_uri(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (is_ws((unsigned char)s[i]))
            return 0;
    return 1;
}

/* -?(0|[1-9][0-9]*): returns chars consumed, 0 if no match at s */
static size_t scan_int(const char *s, size_t n, int allow_minus)
{
    size_t i = 0;
    if (allow_minus && i < n && s[i] == '-')
        i++;
    if (i >= n || !is_digit(s[i]))
        return 0;
    if (s[i] == '0')
        return i + 1;
    while (i < n && is_digit(s[i]))
        i++;
    return i;
}

/* oid: urn:oid:[0-2](\.(0|[1-9][0-9]*))+ */
static int chk_oid(const char *s, size_t n)
{
    if (n < 10 || memcmp(s, "urn:oid:", 8) != 0 || s[8] < '0' || s[8] > '2')
        return 0;
    size_t i = 9;
    int arcs = 0;
    while (i < n) {
        if (s[i] != '.')
            return 0;
        size_t k = scan_int(s + i + 1, n - i - 1, 0);
        if (k == 0)
            return 0;
        i += 1 + k;
        arcs++;
    }
    return arcs > 0;
}

static int is_lhex(char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'f');
}

/* uuid: urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} */
static int chk_uuid(const char *s, size_t n)
{
    if (n != 9 + 36 || memcmp(s, "urn:uuid:", 9) != 0)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        char ch = s[9 + i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-')
                return 0;
        } else if (!is_lhex(ch)) {
            return 0;
        }
    }
    return 1;
}

/* base64Binary: (\s*([0-9a-zA-Z\+/=]){4}\s*)+ -- whitespace only between quartets */
static int chk_base64(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || is_digit(ch) || ch == '+' ||
            ch == '/' || ch == '=')
            count++;
        else if (is_ws((unsigned char)ch)) {
            if (count % 4 != 0)
                return 0;
        } else
            return 0;
    }
    return count > 0 && count % 4 == 0;
}

/* two digits at s in [lo, hi] */
static int two(const char *s, int lo, int hi, int *out)
{
    if (!is_digit(s[0]) || !is_digit(s[1]))
        return 0;
    int v = (s[0] - '0') * 10 + (s[1] - '0');
    if (v < lo || v > hi)
        return 0;
    if (out)
        *out = v;
    return 1;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

/* ([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?
 * i.e. a year 0001-9999, then optional month, then optional day (and a real date).
 * Returns the length of the date part matched (4, 7 or 10), 0 if none. */
static size_t scan_date(const char *s, size_t n)
{
    int y, m, d;
    if (n < 4 || !is_digit(s[0]) || !is_digit(s[1]) || !is_digit(s[2]) || !is_digit(s[3]))
        return 0;
    y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    if (y == 0)
        return 0;
    if (n < 7 || s[4] != '-')
        return 4;
    if (!two(s + 5, 1, 12, &m))
        return 0;
    if (n < 10 || s[7] != '-')
        return 7;
    if (!two(s + 8, 1, 31, &d) || d > days_in_month(y, m))
        return 0;
    return 10;
}

/* ([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)? -- length matched or 0 */
static size_t scan_time(const char *s, size_t n)
{
    if (n < 8 || !two(s, 0, 23, NULL) || s[2] != ':' || !two(s + 3, 0, 59, NULL) || s[5] != ':' ||
        !two(s + 6, 0, 60, NULL))
        return 0;
    size_t i = 8;
    if (i < n && s[i] == '.') {
        size_t k = i + 1;
        while (k < n && is_digit(s[k]))
            k++;
        if (k == i + 1)
            return 0;
        i = k;
    }
    return i;
}

/* Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00) -- whole of s[0..n) */
static int chk_tz(const char *s, size_t n)
{
    if (n == 1)
        return s[0] == 'Z';
    if (n != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':')
        return 0;
    if (memcmp(s + 1, "14:00", 5) == 0)
        return 1;
    return two(s + 1, 0, 13, NULL) && two(s + 4, 0, 59, NULL);
}

static int chk_date(const char *s, size_t n)
{
    size_t k = scan_date(s, n);
    return k > 0 && k == n;
}

/* dateTime: date, or full date "T" time timezone */
static int chk_datetime(const char *s, size_t n)
{
    size_t k = scan_date(s, n);
    if (k == 0)
        return 0;
    if (k == n)
        return 1;
    if (k != 10 || s[10] != 'T')
        return 0;
    size_t t = scan_time(s + 11, n - 11);
    if (t == 0)
        return 0;
    return chk_tz(s + 11 + t, n - 11 - t);
}

/* instant: full date "T" time with seconds, timezone required */
static int chk_instant(const char *s, size_t n)
{
    return n > 11 && scan_date(s, n) == 10 && s[10] == 'T' && chk_datetime(s, n);
}

static int chk_time(const char *s, size_t n)
{
    size_t t = scan_time(s, n);
    return t > 0 && t == n;
}

/* decimal: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int chk_decimal(const char *s, size_t n)
{
    size_t i = scan_int(s, n, 1);
    if (i == 0)
        return 0;
    if (i < n && s[i] == '.') {
        size_t k = i + 1;
        while (k < n && is_digit(s[k]))
            k++;
        if (k == i + 1)
            return 0;
        i = k;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t k = i;
        while (k < n && is_digit(s[k]))
            k++;
        if (k == i)
            return 0;
        i = k;
    }
    return i == n;
}

/* integer -?([0]|([1-9][0-9]*)) in 32-bit range; positiveInt [1-9][0-9]*;
 * unsignedInt [0]|([1-9][0-9]*); both at most 2147483647 */
static int chk_int(const char *s, size_t n, prim p)
{
    size_t i = scan_int(s, n, p == P_INTEGER);
    if (i == 0 || i != n)
        return 0;
    int neg = s[0] == '-';
    size_t d = neg ? 1 : 0;
    if (n - d > 10)
        return 0;
    int64_t v = 0;
    for (; d < n; d++)
        v = v * 10 + (s[d] - '0');
    if (neg)
        v = -v;
    if (v > INT32_MAX || v < INT32_MIN)
        return 0;
    if (p == P_POSITIVE && v < 1)
        return 0;
    if (p == P_UNSIGNED && v < 0)
        return 0;
    return 1;
}

/*
 * xhtml: the narrative div (txt-1, txt-2). Not a full XML parser: a scan of the
 * tags that enforces what matters for safety and for the rules, because
 * narratives are shown to people (the web console renders them):
 *   - one <div> around everything; some text (or an image) inside;
 *   - only the basic HTML formatting elements the FHIR validator allows (no
 *     script, style, iframe, object, form, ...), no DOCTYPE/CDATA/PI;
 *   - no event-handler attributes (on...) and no javascript:/vbscript: values.
 * Returns NULL when acceptable, else a static description of the problem.
 */
static const char *const xhtml_elements[] = {
    "a",  "abbr",    "acronym", "address", "area",   "b",        "bdo", "big",   "blockquote",
    "br", "caption", "cite",    "code",    "col",    "colgroup", "dd",  "dfn",   "div",
    "dl", "dt",      "em",      "h1",      "h2",     "h3",       "h4",  "h5",    "h6",
    "hr", "i",       "img",     "kbd",     "li",     "map",      "ol",  "p",     "pre",
    "q",  "samp",    "small",   "span",    "strong", "sub",      "sup", "table", "tbody",
    "td", "tfoot",   "th",      "thead",   "tr",     "tt",       "ul",  "var",
};

static int xhtml_element_ok(const char *name, size_t n)
{
    size_t lo = 0, hi = sizeof xhtml_elements / sizeof xhtml_elements[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *e = xhtml_elements[mid];
        int c = strncmp(name, e, n);
        if (c == 0 && e[n] == 0)
            return 1;
        if (c < 0 || (c == 0 && e[n] != 0))
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

static int starts_nocase(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    if (n < k)
        return 0;
    for (size_t i = 0; i < k; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch != prefix[i])
            return 0;
    }
    return 1;
}

static int is_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) || ch == ':' ||
           ch == '-' || ch == '_' || ch == '.';
}

static const char *xhtml_problem(const char *s, size_t n)
{
    size_t i = 0, end = n;
    int content = 0;
    while (i < end && is_ws((unsigned char)s[i]))
        i++;
    while (end > i && is_ws((unsigned char)s[end - 1]))
        end--;
    if (end - i < 5 || memcmp(s + i, "<div", 4) != 0 ||
        !(is_ws((unsigned char)s[i + 4]) || s[i + 4] == '>' || s[i + 4] == '/'))
        return "the narrative must be a <div> element";
    if (end - i < 11 || memcmp(s + end - 6, "</div>", 6) != 0)
        return "the narrative must end with </div>";
    while (i < end) {
        if (s[i] != '<') {
            if (!is_ws((unsigned char)s[i]))
                content = 1;
            i++;
            continue;
        }
        if (end - i >= 4 && memcmp(s + i, "<!--", 4) == 0) {
            size_t k = i + 4;
            while (k + 2 < end && memcmp(s + k, "-->", 3) != 0)
                k++;
            if (k + 2 >= end)
                return "unterminated comment";
            i = k + 3;
            continue;
        }
        size_t j = i + 1;
        int closing = j < end && s[j] == '/';
        j += (size_t)closing;
        if (j < end && (s[j] == '!' || s[j] == '?'))
            return "DOCTYPE, CDATA and processing instructions are not allowed";
        size_t name = j;
        while (j < end && is_name_char(s[j]))
            j++;
        if (j == name)
            return "a '<' that does not start a tag (escape it as &lt;)";
        if (!xhtml_element_ok(s + name, j - name))
            return "an element that narratives may not contain (only basic HTML formatting)";
        if (j - name == 3 && memcmp(s + name, "img", 3) == 0)
            content = 1;
        for (;;) {
            while (j < end && is_ws((unsigned char)s[j]))
                j++;
            if (j >= end)
                return "unterminated tag";
            if (s[j] == '>') {
                j++;
                break;
            }
            if (s[j] == '/' && j + 1 < end && s[j + 1] == '>') {
                j += 2;
                break;
            }
            if (closing)
                return "malformed closing tag";
            size_t an = j;
            while (j < end && !is_ws((unsigned char)s[j]) && s[j] != '=' && s[j] != '>' &&
                   s[j] != '/')
                j++;
            if (j == an)
                return "malformed tag";
            if (starts_nocase(s + an, j - an, "on"))
                return "event-handler attributes (on...) are not allowed";
            while (j < end && is_ws((unsigned char)s[j]))
                j++;
            if (j < end && s[j] == '=') {
                j++;
                while (j < end && is_ws((unsigned char)s[j]))
                    j++;
                size_t vs, ve;
                if (j < end && (s[j] == '"' || s[j] == '\'')) {
                    char q = s[j];
                    vs = ++j;
                    while (j < end && s[j] != q)
                        j++;
                    if (j >= end)
                        return "unterminated attribute value";
                    ve = j++;
                } else {
                    vs = j;
                    while (j < end && !is_ws((unsigned char)s[j]) && s[j] != '>')
                        j++;
                    ve = j;
                }
                while (vs < ve && is_ws((unsigned char)s[vs]))
                    vs++;
                if (starts_nocase(s + vs, ve - vs, "javascript:") ||
                    starts_nocase(s + vs, ve - vs, "vbscript:"))
                    return "script URLs are not allowed";
            }
        }
        i = j;
    }
    if (!content)
        return "the narrative has no content (txt-2)";
    return NULL;
}

static int chk_xhtml(const char *s, size_t n)
{
    return xhtml_problem(s, n) == NULL;
}

static int check_text(prim p, const char *s, size_t n)
{
    switch (p) {
    case P_BOOLEAN:
        return (n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0);
    case P_INTEGER:
    case P_POSITIVE:
    case P_UNSIGNED:
        return chk_int(s, n, p);
    case P_DECIMAL:
        return chk_decimal(s, n);
    case P_STRING:
        return chk_string(s, n);
    case P_CODE:
        return chk_code(s, n);
    case P_ID:
        return val_is_id(s, n);
    case P_URI:
        return chk_uri(s, n);
    case P_OID:
        return chk_oid(s, n);
    case P_UUID:
        return chk_uuid(s, n);
    case P_BASE64:
        return chk_base64(s, n);
    case P_DATE:
        return chk_date(s, n);
    case P_DATETIME:
        return chk_datetime(s, n);
    case P_INSTANT:
        return chk_instant(s, n);
    case P_TIME:
        return chk_time(s, n);
    case P_XHTML:
        return chk_xhtml(s, n);
    case P_NONE:
        break;
    }
    return 0;
}

int val_primitive_text(const fhir_type *prim_t, const char *text, size_t n)
{
    if (!prim_t || !text)
        return 0;
    prim p = prim_of(prim_t);
    return p == P_NONE ? 0 : check_text(p, text, n);
}

static const char *json_type_name(json_type t)
{
    switch (t) {
    case JSON_NULL:
        return "null";
    case JSON_FALSE:
    case JSON_TRUE:
        return "a boolean";
    case JSON_NUMBER:
        return "a number";
    case JSON_STRING:
        return "a string";
    case JSON_ARRAY:
        return "an array";
    case JSON_OBJECT:
        return "an object";
    }
    return "?";
}

/* Per-process caches, filled once: the primitive kind of every type (by its
 * position in the model's type array) and the two types the walk compares with. */
#define PRIM_TAB_MAX 2048
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static uint8_t prim_tab[PRIM_TAB_MAX];
static const fhir_type *all_types;
static size_t nall_types;
static const fhir_type *type_resource, *type_extension, *type_concept;

static void cache_init(void)
{
    nall_types = fhir_types_all(&all_types);
    for (size_t i = 0; i < nall_types && i < PRIM_TAB_MAX; i++)
        prim_tab[i] = (uint8_t)prim_of(&all_types[i]);
    type_resource = fhir_type_find("Resource", 8);
    type_extension = fhir_type_find("Extension", 9);
    type_concept = fhir_type_find("CodeableConcept", 15);
}

static prim prim_cached(const fhir_type *t)
{
    size_t i = (size_t)(t - all_types);
    if (t >= all_types && i < nall_types && i < PRIM_TAB_MAX)
        return (prim)prim_tab[i];
    return prim_of(t);
}

static void check_primitive(vctx *c, const json_val *v, const fhir_type *t, const char *binding)
{
    prim p = prim_cached(t);
    const char *want = t->json_type ? t->json_type : "string";
    if (want[0] == 'b') {
        if (v->type != JSON_TRUE && v->type != JSON_FALSE)
            issue(c, OO_VALUE, "Expected a JSON boolean for %s, found %s", t->name,
                  json_type_name(v->type));
        return;
    }
    if (want[0] == 'n') {
        if (v->type != JSON_NUMBER) {
            issue(c, OO_VALUE, "Expected a JSON number for %s, found %s", t->name,
                  json_type_name(v->type));
            return;
        }
    } else if (v->type != JSON_STRING) {
        issue(c, OO_VALUE, "Expected a JSON string for %s, found %s", t->name,
              json_type_name(v->type));
        return;
    }
    if (p == P_XHTML) {
        const char *why = xhtml_problem(v->u.s, v->n);
        if (why)
            issue(c, OO_VALUE, "Invalid narrative: %s", why);
        return;
    }
    if (!check_text(p, v->u.s, v->n)) {
        if (v->n == 0)
            issue(c, OO_VALUE, "Empty string is not a valid %s", t->name);
        else {
            /* the value as text a log can hold: control characters as \uXXXX */
            char shown[61 * 6 + 1];
            size_t o = 0, q = (size_t)quote_len(v->u.s, v->n);
            for (size_t i = 0; i < q && o + 7 < sizeof shown; i++) {
                unsigned char ch = (unsigned char)v->u.s[i];
                if (ch < 0x20)
                    o += (size_t)snprintf(shown + o, sizeof shown - o, "\\u%04x", ch);
                else
                    shown[o++] = (char)ch;
            }
            shown[o] = 0;
            int ctl = 0, blank = 1;
            for (size_t i = 0; i < v->n; i++) {
                unsigned char ch = (unsigned char)v->u.s[i];
                ctl |= ch < 0x20 && ch != '\t' && ch != '\r' && ch != '\n';
                blank &= ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
            }
            issue(c, OO_VALUE, "Invalid %s value '%s'%s", t->name, shown,
                  p != P_STRING ? ""
                  : ctl ? ": a control character (only tab, CR and LF are allowed)"
                  : blank ? ": whitespace only" : "");
        }
        return;
    }
    /* a code with a required binding must come from the value set (when the
     * definitions enumerate it; -1 = not enumerable, not checked) */
    if (binding && p == P_CODE && fhir_valueset_contains(binding, v->u.s, v->n) == 0)
        issue(c, OO_CODE_INVALID, "Code '%.*s' is not in the required value set %s",
              quote_len(v->u.s, v->n), v->u.s, binding);
}

/* ---- the walk --------------------------------------------------------------------- */

static void walk_members(vctx *c, const json_val *obj, const fhir_type *t, int is_resource);

static void walk_resource(vctx *c, const json_val *v)
{
    if (v->type != JSON_OBJECT) {
        issue(c, OO_STRUCTURE, "Expected a resource (an object), found %s",
              json_type_name(v->type));
        return;
    }
    const json_val *rt = json_get(v, "resourceType");
    if (!rt || rt->type != JSON_STRING) {
        size_t old = path_push(c, ".", "resourceType", 12);
        issue(c, rt ? OO_STRUCTURE : OO_REQUIRED,
              rt ? "resourceType must be a string" : "Missing resourceType");
        path_pop(c, old);
        return;
    }
    const fhir_type *t = fhir_resource_type(rt->u.s, rt->n);
    if (!t) {
        size_t old = path_push(c, ".", "resourceType", 12);
        issue(c, OO_NOT_SUPPORTED, "Unknown resource type '%.*s'", quote_len(rt->u.s, rt->n),
              rt->u.s);
        path_pop(c, old);
        return;
    }
    walk_members(c, v, t, 1);
}

/* A CodeableConcept under a required binding: some coding's code must be in the
 * value set (when enumerable). Systems are not compared: the model keeps codes. */
static void check_concept(vctx *c, const json_val *v, const char *binding)
{
    if (fhir_valueset_contains(binding, NULL, 0) < 0)
        return; /* not enumerable: nothing to check */
    const json_val *codings = json_get(v, "coding");
    if (codings && codings->type == JSON_ARRAY) {
        for (uint32_t i = 0; i < codings->n; i++) {
            const json_val *code = json_get(&codings->u.items[i], "code");
            if (code && code->type == JSON_STRING &&
                fhir_valueset_contains(binding, code->u.s, code->n) == 1)
                return;
        }
    }
    issue(c, OO_CODE_INVALID, "No coding from the required value set %s", binding);
}

/* 1 when object v has no member other than "id" (ele-1 fails for an element). */
static int only_id(const json_val *v)
{
    for (uint32_t i = 0; i < v->n; i++)
        if (strcmp(v->u.members[i].key, "id") != 0)
            return 0;
    return 1;
}

static void walk_item(vctx *c, const json_val *v, const fhir_type *t, const char *binding)
{
    if (v->type == JSON_NULL) {
        issue(c, OO_STRUCTURE, "null is not allowed here");
        return;
    }
    switch (t->kind) {
    case FHIR_PRIMITIVE:
        check_primitive(c, v, t, binding);
        return;
    case FHIR_RESOURCE:
        walk_resource(c, v);
        return;
    case FHIR_COMPLEX:
    case FHIR_BACKBONE:
        if (v->type != JSON_OBJECT) {
            issue(c, OO_STRUCTURE, "Expected an object for %s, found %s", t->name,
                  json_type_name(v->type));
            return;
        }
        if (only_id(v))
            issue(c, OO_INVARIANT, "An element must have a value or children besides id (ele-1)");
        walk_members(c, v, t, 0);
        if (binding && t == c->t_concept)
            check_concept(c, v, binding);
        return;
    }
}

/* Push the location of element e, reached through JSON key `key`. */
static size_t push_elem(vctx *c, const fhir_elem *e, const fhir_type *ty, const char *key,
                        size_t klen)
{
    if (!e->is_choice)
        return path_push(c, ".", key, klen);
    size_t old = path_push(c, ".", e->name, strlen(e->name));
    path_push(c, ".ofType(", ty->name, strlen(ty->name));
    path_push(c, "", ")", 1);
    return old;
}

/* A value member: `key` names element e whose (chosen) type is ty. */
static void walk_value(vctx *c, const json_val *parent, const json_val *v, const fhir_elem *e,
                       const fhir_type *ty, const char *key, size_t klen)
{
    size_t old = push_elem(c, e, ty, key, klen);
    int saved_contained = c->contained;
    if (ty == c->t_resource) {
        /* "contained" holds contained resources; Bundle.entry.resource and
         * Parameters.parameter.resource hold independent ones */
        c->contained = strcmp(e->name, "contained") == 0 ? c->contained + 1 : 0;
    }
    if (e->max > 1) {
        if (v->type != JSON_ARRAY) {
            issue(c, OO_STRUCTURE, "Element '%s' must be an array (it may repeat)", key);
            walk_item(c, v, ty, e->binding_vs);
        } else {
            if (v->n == 0)
                issue(c, OO_STRUCTURE, "Element '%s' is an empty array", key);
            if (v->n < e->min)
                issue(c, OO_REQUIRED, "Element '%s' needs at least %u items, found %u", key,
                      (unsigned)e->min, (unsigned)v->n);
            if (e->max != FHIR_MAX_UNBOUNDED && v->n > e->max)
                issue(c, OO_STRUCTURE, "Element '%s' allows at most %u items, found %u", key,
                      (unsigned)e->max, (unsigned)v->n);
            const json_val *alt = NULL;
            int alt_looked = 0;
            for (uint32_t i = 0; i < v->n && !c->full; i++) {
                const json_val *item = &v->u.items[i];
                size_t o2 = path_push_index(c, i);
                if (item->type == JSON_NULL) {
                    if (!alt_looked) {
                        char ukey[256];
                        alt_looked = 1;
                        if (klen + 1 < sizeof ukey) {
                            ukey[0] = '_';
                            memcpy(ukey + 1, key, klen);
                            alt = json_getn(parent, ukey, klen + 1);
                        }
                    }
                    if (ty->kind != FHIR_PRIMITIVE || !alt || alt->type != JSON_ARRAY ||
                        i >= alt->n || alt->u.items[i].type == JSON_NULL)
                        issue(c, OO_STRUCTURE,
                              "null in '%s' without an extension at the same index in '_%s'", key,
                              key);
                } else {
                    walk_item(c, item, ty, e->binding_vs);
                }
                path_pop(c, o2);
            }
        }
    } else if (v->type == JSON_ARRAY) {
        issue(c, OO_STRUCTURE, "Element '%s' must not be an array (it occurs at most once)", key);
    } else {
        walk_item(c, v, ty, e->binding_vs);
    }
    c->contained = saved_contained;
    path_pop(c, old);
}

/* A "_key" member: the id/extension part of primitive element e (type ty).
 * `name` is the key without its underscore. */
static void walk_prim_ext(vctx *c, const json_val *parent, const json_val *v, const fhir_elem *e,
                          const fhir_type *ty, const char *name, size_t nlen)
{
    size_t old = push_elem(c, e, ty, name, nlen);
    if (e->max > 1) {
        if (v->type != JSON_ARRAY) {
            issue(c, OO_STRUCTURE, "'_%s' must be an array aligned with '%s'", name, name);
        } else {
            const json_val *val = json_getn(parent, name, nlen);
            if (val && val->type == JSON_ARRAY && val->n != v->n)
                issue(c, OO_STRUCTURE, "'_%s' has %u items but '%s' has %u", name, (unsigned)v->n,
                      name, (unsigned)val->n);
            for (uint32_t i = 0; i < v->n && !c->full; i++) {
                const json_val *item = &v->u.items[i];
                size_t o2 = path_push_index(c, i);
                if (item->type == JSON_OBJECT)
                    walk_members(c, item, ty, 0);
                else if (item->type != JSON_NULL)
                    issue(c, OO_STRUCTURE, "Items of '_%s' must be objects or null, found %s", name,
                          json_type_name(item->type));
                else if (!val || val->type != JSON_ARRAY)
                    issue(c, OO_STRUCTURE, "null in '_%s' without a value in '%s'", name, name);
                path_pop(c, o2);
            }
        }
    } else if (v->type != JSON_OBJECT) {
        issue(c, OO_STRUCTURE, "'_%s' must be an object, found %s", name, json_type_name(v->type));
    } else {
        walk_members(c, v, ty, 0);
    }
    path_pop(c, old);
}

static void walk_members(vctx *c, const json_val *obj, const fhir_type *t, int is_resource)
{
    uint64_t seen_val[VAL_SEEN_BITS / 64] = {0}, seen_ext[VAL_SEEN_BITS / 64] = {0};
    size_t cursor = 0;

    if (++c->depth > VAL_MAX_DEPTH) {
        issue(c, OO_STRUCTURE, "Too deeply nested");
        c->depth--;
        return;
    }
    for (uint32_t m = 0; m < obj->n && !c->full; m++) {
        const json_member *mb = &obj->u.members[m];
        const char *key = mb->key;
        size_t klen = mb->key_len;
        if (is_resource && klen == 12 && memcmp(key, "resourceType", 12) == 0)
            continue;
        int under = klen > 1 && key[0] == '_';
        const char *name = under ? key + 1 : key;
        size_t nlen = under ? klen - 1 : klen;
        const fhir_type *choice = NULL;
        const fhir_elem *e = NULL;
        /* keys mostly follow definition order: look a few elements ahead first */
        for (size_t k = cursor; k < t->nelems && k < cursor + 4; k++) {
            const fhir_elem *x = &t->elems[k];
            if (x->name[0] == name[0] && !x->is_choice && strncmp(x->name, name, nlen) == 0 &&
                x->name[nlen] == 0) {
                e = x;
                break;
            }
        }
        if (!e)
            e = fhir_elem_find(t, name, nlen, &choice);
        if (!e) {
            size_t old = path_push(c, ".", key, klen);
            issue(c, OO_STRUCTURE, "Unknown element '%.*s' in %s", quote_len(key, klen), key,
                  t->name);
            path_pop(c, old);
            continue;
        }
        const fhir_type *ty = e->is_choice ? choice : e->types[0];
        size_t idx = (size_t)(e - t->elems);
        cursor = idx + 1;
        uint64_t bit = idx < VAL_SEEN_BITS ? (uint64_t)1 << (idx % 64) : 0;
        uint64_t *seen = under ? &seen_ext[idx / 64 % (VAL_SEEN_BITS / 64)]
                               : &seen_val[idx / 64 % (VAL_SEEN_BITS / 64)];
        if (e->is_choice && bit && (*seen & bit)) {
            size_t old = path_push(c, ".", key, klen);
            issue(c, OO_STRUCTURE, "Only one of %s[x] may be present", e->name);
            path_pop(c, old);
            continue;
        }
        *seen |= bit;
        if (under) {
            if (ty->kind != FHIR_PRIMITIVE) {
                size_t old = path_push(c, ".", key, klen);
                issue(c, OO_STRUCTURE, "'%.*s' is only allowed for primitive elements",
                      quote_len(key, klen), key);
                path_pop(c, old);
                continue;
            }
            walk_prim_ext(c, obj, &mb->val, e, ty, name, nlen);
        } else {
            if (c->contained && is_resource && klen == 9 && memcmp(key, "contained", 9) == 0) {
                size_t old = path_push(c, ".", key, klen);
                issue(c, OO_INVARIANT,
                      "A contained resource SHALL NOT contain other resources (dom-2)");
                path_pop(c, old);
                continue;
            }
            walk_value(c, obj, &mb->val, e, ty, key, klen);
        }
    }
    if (c->full) {
        c->depth--;
        return;
    }
    /* required elements, and the ext-1 invariant of Extension */
    for (size_t k = 0; k < t->nelems && k < VAL_SEEN_BITS; k++) {
        const fhir_elem *e = &t->elems[k];
        if (e->min == 0)
            continue;
        uint64_t bit = (uint64_t)1 << (k % 64);
        if ((seen_val[k / 64] | seen_ext[k / 64]) & bit)
            continue;
        size_t old = path_push(c, ".", e->name, strlen(e->name));
        issue(c, OO_REQUIRED, "Missing required element '%s%s' in %s", e->name,
              e->is_choice ? "[x]" : "", t->name);
        path_pop(c, old);
    }
    if (t == c->t_extension) {
        const fhir_elem *ext = fhir_elem_find(t, "extension", 9, NULL);
        int has_ext = 0, has_val = 0;
        for (size_t k = 0; k < t->nelems && k < VAL_SEEN_BITS; k++) {
            uint64_t bit = (uint64_t)1 << (k % 64);
            if (!((seen_val[k / 64] | seen_ext[k / 64]) & bit))
                continue;
            if (&t->elems[k] == ext)
                has_ext = 1;
            else if (t->elems[k].is_choice)
                has_val = 1;
        }
        if (has_ext == has_val)
            issue(c, OO_INVARIANT,
                  "An extension must have either extensions or value[x], "
                  "not both (ext-1)");
    }
    c->depth--;
}

/* ---- entry points -------------------------------------------------------------------- */

const char *val_resource_type(const json_val *root)
{
    const json_val *rt = root && root->type == JSON_OBJECT ? json_get(root, "resourceType") : NULL;
    return rt && rt->type == JSON_STRING ? rt->u.s : NULL;
}

int val_check_type(const json_val *root, const char *expected, oo *out)
{
    const char *rt = val_resource_type(root);
    if (!expected || (rt && strcmp(rt, expected) == 0))
        return 0;
    if (rt)
        oo_addf(out, OO_ERROR, OO_INVALID, "resourceType",
                "Resource type '%.60s' does not match the expected type '%.60s'", rt, expected);
    else
        oo_addf(out, OO_ERROR, OO_INVALID, "resourceType",
                "Missing resourceType (expected '%.60s')", expected);
    return ERR_INVALID;
}

int val_resource(arena *a, const json_val *root, const char *expected_type, oo *out)
{
    vctx c;
    (void)a;
    c.out = out;
    c.errors = 0;
    c.full = 0;
    c.depth = 0;
    c.contained = 0;
    pthread_once(&cache_once, cache_init);
    c.t_resource = type_resource;
    c.t_extension = type_extension;
    c.t_concept = type_concept;
    c.nframes = 0;

    if (!root || root->type != JSON_OBJECT) {
        issue(&c, OO_STRUCTURE, "A resource must be a JSON object");
        return oo_error(out) ? oo_error(out) : ERR_INVALID;
    }
    const json_val *rt = json_get(root, "resourceType");
    if (!rt || rt->type != JSON_STRING) {
        path_push(&c, "", "resourceType", 12);
        issue(&c, rt ? OO_STRUCTURE : OO_REQUIRED,
              rt ? "resourceType must be a string" : "Missing resourceType");
        return oo_error(out) ? oo_error(out) : ERR_INVALID;
    }
    const fhir_type *t = fhir_resource_type(rt->u.s, rt->n);
    if (!t) {
        path_push(&c, "", "resourceType", 12);
        issue(&c, OO_NOT_SUPPORTED, "Unknown resource type '%.*s'", quote_len(rt->u.s, rt->n),
              rt->u.s);
        return oo_error(out) ? oo_error(out) : ERR_INVALID;
    }
    if (expected_type && strcmp(expected_type, t->name) != 0 &&
        val_check_type(root, expected_type, out) != 0)
        c.errors++;
    path_push(&c, "", t->name, strlen(t->name));
    walk_members(&c, root, t, 1);
    if (oo_error(out))
        return oo_error(out);
    return c.errors ? ERR_INVALID : 0;
}

/* ---- command line: hortus validate ------------------------------------------------ */
/*
 *   hortus validate [--type TYPE] FILE...
 *
 * Each FILE is one JSON resource (a Bundle is validated with its entries), or,
 * when its name ends in ".ndjson", one resource per non-empty line; "-" reads
 * standard input as ndjson. Every invalid resource is listed with its issues;
 * the exit code is 0 when everything is valid, 1 otherwise, 2 on usage errors.
 */

typedef struct val_tally {
    size_t total, invalid;
} val_tally;

/* Validate one resource text; print its issues. Returns 0 valid, 1 not. */
static int cli_one(arena *a, const char *name, size_t line, const char *text, size_t n,
                   const char *type, val_tally *t)
{
    json_val *root = NULL;
    json_error jerr;
    oo o;
    arena_reset(a);
    t->total++;
    if (json_parse(a, text, n, JSON_FHIR, &root, &jerr) != 0) {
        t->invalid++;
        printf("%s:%zu: not valid FHIR JSON: %s (line %d, column %d)\n", name, line, jerr.msg,
               jerr.line, jerr.col);
        return 1;
    }
    oo_init(&o, a);
    if (val_resource(a, root, type, &o) == 0)
        return 0;
    t->invalid++;
    const char *rt = val_resource_type(root);
    const char *id = json_get_str(root, "id");
    printf("%s:%zu: invalid %s%s%s\n", name, line, rt ? rt : "resource", id ? "/" : "",
           id ? id : "");
    for (size_t i = 0; i < o.n; i++) {
        const oo_issue *is = oo_get(&o, i);
        printf("  %s %s %s: %s\n", oo_severity_str(is->severity), oo_code_str(is->code),
               is->expression ? is->expression : "-", is->diagnostics ? is->diagnostics : "");
    }
    return 1;
}

static int cli_read(FILE *f, buf *b)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_put(b, chunk, n);
    return ferror(f) ? ERR_IO : b->err;
}

int val_cli_main(int argc, char **argv)
{
    const char *type = NULL;
    int i = 1, failed = 0;
    val_tally t = {0, 0};
    if (i + 1 < argc && strcmp(argv[i], "--type") == 0) {
        type = argv[i + 1];
        i += 2;
    }
    if (i >= argc) {
        fprintf(stderr,
                "usage: hortus validate [--type TYPE] FILE...  (\"-\" = ndjson on stdin)\n");
        return 2;
    }
    arena *a = arena_new(0);
    if (!a)
        return 1;
    for (; i < argc; i++) {
        const char *name = argv[i];
        int is_stdin = strcmp(name, "-") == 0;
        size_t nl = strlen(name);
        int ndjson = is_stdin || (nl > 7 && strcmp(name + nl - 7, ".ndjson") == 0);
        FILE *f = is_stdin ? stdin : fopen(name, "rb");
        buf b = BUF_INIT;
        if (!f || cli_read(f, &b) != 0) {
            fprintf(stderr, "hortus validate: cannot read %s\n", name);
            failed = 1;
            if (f && !is_stdin)
                fclose(f);
            buf_free(&b);
            continue;
        }
        if (!is_stdin)
            fclose(f);
        const char *p = b.data ? b.data : "";
        size_t len = b.len;
        if (!ndjson) {
            failed |= cli_one(a, name, 1, p, len, type, &t);
        } else {
            size_t line = 0, start = 0;
            for (size_t k = 0; k <= len; k++) {
                if (k < len && p[k] != '\n')
                    continue;
                line++;
                size_t end = k;
                if (end > start && p[end - 1] == '\r')
                    end--;
                size_t s = start;
                while (s < end && (p[s] == ' ' || p[s] == '\t'))
                    s++;
                if (s < end)
                    failed |= cli_one(a, name, line, p + s, end - s, type, &t);
                start = k + 1;
            }
        }
        buf_free(&b);
    }
    arena_free(a);
    printf("%zu resources, %zu invalid\n", t.total, t.invalid);
    return failed ? 1 : 0;
}
