/*
 * parse.c -- FHIRPath lexer and parser: source text -> fp_node tree.
 *
 * A hand-written lexer feeds a precedence-climbing parser. Precedence, from
 * loosest to tightest (all left-associative), as in the FHIRPath N1 grammar:
 *
 *    1 implies          5 = ~ != !~        9 + - &
 *    2 or xor           6 < > <= >=       10 * / div mod
 *    3 and              7 |               11 unary + -
 *    4 in contains      8 is as           12 . and [] (postfix)
 *
 * Everything is decided here once: functions are looked up in the function
 * table (unknown names and wrong argument counts are compile errors), literals
 * are converted to values (decimals, dates, quantities), type specifiers are
 * split into namespace and name. Evaluation then never looks at text again.
 * Nesting is bounded by FP_MAX_DEPTH so hostile input cannot exhaust the stack.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "fhirpath/internal.h"

typedef enum tok_kind {
    T_EOF = 0,
    T_IDENT,   /* identifier (delimited = 1 when written `...`) */
    T_STRING,  /* '...' decoded into str/str_len */
    T_NUMBER,  /* digits with optional .digits */
    T_DATE,    /* @... ; text after the '@' */
    T_EXTVAR,  /* %name or %`name` or %'name'; name in str */
    T_DOLLAR,  /* $this $index $total; name after '$' */
    T_PUNCT,   /* operator or punctuation, 1-2 chars in text */
} tok_kind;

typedef struct token {
    tok_kind kind;
    size_t pos, len; /* source span */
    const char *str; /* decoded identifier/string/variable name (NUL-terminated) */
    size_t str_len;
    int delimited;
} token;

typedef struct parser {
    fp_expr *x;
    const char *s;
    size_t len, pos;
    token tok;
    fp_error *err;
    int failed;
    int depth;
} parser;

static void perr(parser *p, size_t pos, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void perr(parser *p, size_t pos, int code, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = code;
    if (!p->err)
        return;
    p->err->code = code;
    p->err->pos = (long)pos;
    int line = 1, col = 1;
    for (size_t i = 0; i < pos && i < p->len; i++) {
        if (p->s[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    p->err->line = line;
    p->err->col = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- lexer --- */

static int is_ident_start(int c)
{
    return isalpha(c) || c == '_';
}

static int is_ident_char(int c)
{
    return isalnum(c) || c == '_';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void put_utf8(char *o, size_t *n, unsigned cp)
{
    if (cp < 0x80) {
        o[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*n)++] = (char)(0xC0 | (cp >> 6));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        o[(*n)++] = (char)(0xE0 | (cp >> 12));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[(*n)++] = (char)(0xF0 | (cp >> 18));
        o[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* Scan a quoted string/identifier starting at p->pos (the opening quote q). */
static int lex_quoted(parser *p, char q, token *t)
{
    size_t start = p->pos;
    size_t i = p->pos + 1;
    /* decoded text is never longer than the source span */
    size_t end = i;
    while (end < p->len && p->s[end] != q) {
        if (p->s[end] == '\\')
            end++;
        end++;
    }
    if (end >= p->len) {
        perr(p, start, ERR_INVALID, "unterminated %s",
             q == '`' ? "delimited identifier" : "string literal");
        return -1;
    }
    char *o = arena_alloc(p->x->a, end - i + 1);
    if (!o) {
        perr(p, start, ERR_NOMEM, "out of memory");
        return -1;
    }
    size_t n = 0;
    while (i < end) {
        char c = p->s[i++];
        if (c != '\\') {
            o[n++] = c;
            continue;
        }
        c = p->s[i++];
        switch (c) {
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'f': o[n++] = '\f'; break;
        case '\'': case '"': case '`': case '\\': case '/': o[n++] = c; break;
        case 'u': {
            unsigned cp = 0;
            for (int k = 0; k < 4; k++) {
                int h = i < end ? hexval((unsigned char)p->s[i]) : -1;
                if (h < 0) {
                    perr(p, i, ERR_INVALID, "bad \\u escape in string literal");
                    return -1;
                }
                cp = cp * 16 + (unsigned)h;
                i++;
            }
            /* a surrogate pair written as two escapes */
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= end && p->s[i] == '\\' &&
                p->s[i + 1] == 'u') {
                unsigned lo = 0;
                int okp = 1;
                for (int k = 0; k < 4; k++) {
                    int h = hexval((unsigned char)p->s[i + 2 + k]);
                    if (h < 0)
                        okp = 0;
                    lo = lo * 16 + (unsigned)(h < 0 ? 0 : h);
                }
                if (okp && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
            }
            if (cp >= 0xD800 && cp < 0xE000)
                cp = 0xFFFD;
            /* 4 escape chars + 2 for "\u" always give room for <= 4 bytes */
            put_utf8(o, &n, cp);
            break;
        }
        default:
            perr(p, i - 2, ERR_INVALID, "unknown escape '\\%c' in string literal", c);
            return -1;
        }
    }
    o[n] = 0;
    t->str = o;
    t->str_len = n;
    p->pos = end + 1;
    return 0;
}

static int digits(parser *p, size_t *i, int count)
{
    for (int k = 0; k < count; k++) {
        if (*i >= p->len || !isdigit((unsigned char)p->s[*i]))
            return 0;
        (*i)++;
    }
    return 1;
}

/* Scan a time part hh(:mm(:ss(.fff)?)?)? at *i; 1 if found. */
static int scan_time(parser *p, size_t *i)
{
    if (!digits(p, i, 2))
        return 0;
    size_t j = *i;
    if (j < p->len && p->s[j] == ':' && (j++, digits(p, &j, 2))) {
        *i = j;
        if (j < p->len && p->s[j] == ':' && (j++, digits(p, &j, 2))) {
            *i = j;
            if (j < p->len && p->s[j] == '.' && j + 1 < p->len &&
                isdigit((unsigned char)p->s[j + 1])) {
                j++;
                while (j < p->len && isdigit((unsigned char)p->s[j]))
                    j++;
                *i = j;
            }
        }
    }
    return 1;
}

static void scan_tz(parser *p, size_t *i)
{
    size_t j = *i;
    if (j < p->len && p->s[j] == 'Z') {
        *i = j + 1;
        return;
    }
    if (j < p->len && (p->s[j] == '+' || p->s[j] == '-')) {
        j++;
        if (digits(p, &j, 2) && j < p->len && p->s[j] == ':' && (j++, digits(p, &j, 2)))
            *i = j;
    }
}

static int lex_date(parser *p, token *t)
{
    size_t start = p->pos, i = p->pos + 1;
    if (i < p->len && p->s[i] == 'T') {
        i++;
        if (!scan_time(p, &i)) {
            perr(p, start, ERR_INVALID, "invalid time literal");
            return -1;
        }
    } else {
        if (!digits(p, &i, 4)) {
            perr(p, start, ERR_INVALID, "invalid date literal");
            return -1;
        }
        size_t j = i;
        if (j < p->len && p->s[j] == '-' && (j++, digits(p, &j, 2))) {
            i = j;
            if (j < p->len && p->s[j] == '-' && (j++, digits(p, &j, 2)))
                i = j;
        }
        if (i < p->len && p->s[i] == 'T') {
            i++;
            if (scan_time(p, &i))
                scan_tz(p, &i);
        }
    }
    if (i < p->len && is_ident_char((unsigned char)p->s[i])) {
        perr(p, start, ERR_INVALID, "invalid date/time literal");
        return -1;
    }
    t->kind = T_DATE;
    t->str = p->s + start + 1;
    t->str_len = i - start - 1;
    p->pos = i;
    return 0;
}

/* Read the next token into p->tok. */
static int lex(parser *p)
{
    token *t = &p->tok;
    memset(t, 0, sizeof *t);
    for (;;) {
        while (p->pos < p->len && isspace((unsigned char)p->s[p->pos]))
            p->pos++;
        if (p->pos + 1 < p->len && p->s[p->pos] == '/' && p->s[p->pos + 1] == '/') {
            while (p->pos < p->len && p->s[p->pos] != '\n')
                p->pos++;
            continue;
        }
        if (p->pos + 1 < p->len && p->s[p->pos] == '/' && p->s[p->pos + 1] == '*') {
            size_t start = p->pos;
            p->pos += 2;
            while (p->pos + 1 < p->len && !(p->s[p->pos] == '*' && p->s[p->pos + 1] == '/'))
                p->pos++;
            if (p->pos + 1 >= p->len) {
                perr(p, start, ERR_INVALID, "unterminated comment");
                return -1;
            }
            p->pos += 2;
            continue;
        }
        break;
    }
    t->pos = p->pos;
    if (p->pos >= p->len) {
        t->kind = T_EOF;
        return 0;
    }
    unsigned char c = (unsigned char)p->s[p->pos];
    if (is_ident_start(c)) {
        size_t i = p->pos;
        while (i < p->len && is_ident_char((unsigned char)p->s[i]))
            i++;
        t->kind = T_IDENT;
        t->str = arena_strndup(p->x->a, p->s + p->pos, i - p->pos);
        if (!t->str) {
            perr(p, p->pos, ERR_NOMEM, "out of memory");
            return -1;
        }
        t->str_len = i - p->pos;
        p->pos = i;
    } else if (c == '`') {
        if (lex_quoted(p, '`', t))
            return -1;
        t->kind = T_IDENT;
        t->delimited = 1;
    } else if (c == '\'') {
        if (lex_quoted(p, '\'', t))
            return -1;
        t->kind = T_STRING;
    } else if (isdigit(c)) {
        size_t i = p->pos;
        while (i < p->len && isdigit((unsigned char)p->s[i]))
            i++;
        if (i + 1 < p->len && p->s[i] == '.' && isdigit((unsigned char)p->s[i + 1])) {
            i++;
            while (i < p->len && isdigit((unsigned char)p->s[i]))
                i++;
        }
        t->kind = T_NUMBER;
        t->str = p->s + p->pos;
        t->str_len = i - p->pos;
        p->pos = i;
    } else if (c == '@') {
        if (lex_date(p, t))
            return -1;
    } else if (c == '%') {
        size_t start = p->pos;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '`' || p->s[p->pos] == '\'')) {
            if (lex_quoted(p, p->s[p->pos], t))
                return -1;
        } else if (p->pos < p->len && is_ident_start((unsigned char)p->s[p->pos])) {
            size_t i = p->pos;
            while (i < p->len && (is_ident_char((unsigned char)p->s[i]) || p->s[i] == '-'))
                i++;
            t->str = arena_strndup(p->x->a, p->s + p->pos, i - p->pos);
            if (!t->str) {
                perr(p, start, ERR_NOMEM, "out of memory");
                return -1;
            }
            t->str_len = i - p->pos;
            p->pos = i;
        } else {
            perr(p, start, ERR_INVALID, "expected a variable name after '%%'");
            return -1;
        }
        t->kind = T_EXTVAR;
        t->pos = start;
    } else if (c == '$') {
        size_t i = p->pos + 1;
        while (i < p->len && is_ident_char((unsigned char)p->s[i]))
            i++;
        t->kind = T_DOLLAR;
        t->str = p->s + p->pos + 1;
        t->str_len = i - p->pos - 1;
        p->pos = i;
    } else {
        static const char *const two[] = {"<=", ">=", "!=", "!~"};
        for (size_t k = 0; k < 4; k++) {
            if (p->pos + 1 < p->len && p->s[p->pos] == two[k][0] &&
                p->s[p->pos + 1] == two[k][1]) {
                t->kind = T_PUNCT;
                t->str = two[k];
                t->str_len = 2;
                p->pos += 2;
                t->len = 2;
                return 0;
            }
        }
        if (!strchr(".[](){},+-*/&|<>=~", c)) {
            if (c >= 0x20 && c < 0x7f)
                perr(p, p->pos, ERR_INVALID, "unexpected character '%c'", c);
            else
                perr(p, p->pos, ERR_INVALID, "unexpected byte 0x%02x", c);
            return -1;
        }
        t->kind = T_PUNCT;
        t->str = p->s + p->pos;
        t->str_len = 1;
        p->pos++;
    }
    t->len = p->pos - t->pos;
    return 0;
}

static int is_punct(const parser *p, const char *s)
{
    return p->tok.kind == T_PUNCT && p->tok.str_len == strlen(s) &&
           !memcmp(p->tok.str, s, p->tok.str_len);
}

static const char *tok_desc(const parser *p, char *tmp, size_t n)
{
    if (p->tok.kind == T_EOF)
        return "end of expression";
    size_t l = p->tok.len < 30 ? p->tok.len : 30;
    snprintf(tmp, n, "'%.*s'", (int)l, p->s + p->tok.pos);
    return tmp;
}

static int expect(parser *p, const char *s)
{
    if (!is_punct(p, s)) {
        char tmp[48];
        perr(p, p->tok.pos, ERR_INVALID, "expected '%s' but found %s", s,
             tok_desc(p, tmp, sizeof tmp));
        return -1;
    }
    return lex(p);
}

/* --------------------------------------------------------------- parser --- */

static fp_node *new_node(parser *p, fp_nkind k, size_t pos)
{
    fp_node *n = arena_zalloc(p->x->a, sizeof *n);
    if (!n) {
        perr(p, pos, ERR_NOMEM, "out of memory");
        return NULL;
    }
    n->kind = (uint8_t)k;
    n->pos = (uint32_t)pos;
    return n;
}

static fp_node *parse_expr(parser *p, int minprec);

static int binop_of(const parser *p, int *prec, fp_op *op)
{
    const token *t = &p->tok;
    if (t->kind == T_PUNCT) {
        char a = t->str[0], b = t->str_len > 1 ? t->str[1] : 0;
        switch (a) {
        case '=': *prec = 5, *op = OP_EQ; return 1;
        case '~': *prec = 5, *op = OP_EQUIV; return 1;
        case '!': *prec = 5, *op = b == '=' ? OP_NE : OP_NEQUIV; return 1;
        case '<': *prec = 6, *op = b == '=' ? OP_LE : OP_LT; return 1;
        case '>': *prec = 6, *op = b == '=' ? OP_GE : OP_GT; return 1;
        case '|': *prec = 7, *op = OP_UNION; return 1;
        case '+': *prec = 9, *op = OP_ADD; return 1;
        case '-': *prec = 9, *op = OP_SUB; return 1;
        case '&': *prec = 9, *op = OP_CONCAT; return 1;
        case '*': *prec = 10, *op = OP_MUL; return 1;
        case '/': *prec = 10, *op = OP_DIV; return 1;
        default: return 0;
        }
    }
    if (t->kind != T_IDENT || t->delimited || t->str_len < 2 || t->str_len > 8)
        return 0;
    static const struct {
        const char *s;
        int prec;
        fp_op op;
    } words[] = {
        {"implies", 1, OP_IMPLIES}, {"or", 2, OP_OR},   {"xor", 2, OP_XOR},
        {"and", 3, OP_AND},         {"in", 4, OP_IN},   {"contains", 4, OP_CONTAINS},
        {"is", 8, 0},               {"as", 8, 0},       {"div", 10, OP_IDIV},
        {"mod", 10, OP_MOD},
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (words[i].s[0] == t->str[0] && !strcmp(words[i].s, t->str)) {
            *prec = words[i].prec;
            *op = words[i].op;
            return 1;
        }
    }
    return 0;
}

/* qualifiedIdentifier for is/as/ofType: name or ns.name */
static int parse_typespec(parser *p, fp_typespec *ts)
{
    if (p->tok.kind != T_IDENT) {
        char tmp[48];
        perr(p, p->tok.pos, ERR_INVALID, "expected a type name but found %s",
             tok_desc(p, tmp, sizeof tmp));
        return -1;
    }
    const char *first = p->tok.str;
    if (lex(p))
        return -1;
    if (is_punct(p, ".")) {
        if (lex(p))
            return -1;
        if (p->tok.kind != T_IDENT) {
            char tmp[48];
            perr(p, p->tok.pos, ERR_INVALID, "expected a type name after '.' but found %s",
                 tok_desc(p, tmp, sizeof tmp));
            return -1;
        }
        ts->ns = first;
        ts->name = p->tok.str;
        ts->ft = fhir_type_find(ts->name, strlen(ts->name));
        /* FHIR backbone types are never named in expressions; a third part
         * (e.g. FHIR.Patient.contact) is not a type */
        return lex(p);
    }
    ts->ns = NULL;
    ts->name = first;
    ts->ft = fhir_type_find(ts->name, strlen(ts->name));
    return 0;
}

static int check_type(parser *p, const fp_typespec *ts, size_t pos)
{
    if (fp_type_known(ts))
        return 0;
    perr(p, pos, ERR_INVALID, "unknown type '%s%s%s'", ts->ns ? ts->ns : "", ts->ns ? "." : "",
         ts->name);
    return -1;
}

/* For is: any name is allowed (unknown ones are simply not matched), but a namespace
 * must be FHIR or System. */
static int check_type_ns(parser *p, const fp_typespec *ts, size_t pos)
{
    if (!ts->ns || !strcmp(ts->ns, "FHIR") || !strcmp(ts->ns, "System"))
        return 0;
    perr(p, pos, ERR_INVALID, "unknown type '%s%s%s'", ts->ns ? ts->ns : "", ts->ns ? "." : "",
         ts->name);
    return -1;
}

static int is_calendar_word(const char *s)
{
    static const char *const w[] = {"year",    "years",   "month",  "months",
                                    "week",    "weeks",   "day",    "days",
                                    "hour",    "hours",   "minute", "minutes",
                                    "second",  "seconds", "millisecond",
                                    "milliseconds"};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        if (!strcmp(s, w[i]))
            return 1;
    return 0;
}

static int make_number(parser *p, const token *t, fp_val *v)
{
    memset(v, 0, sizeof *v);
    if (!memchr(t->str, '.', t->str_len)) {
        int64_t acc = 0;
        int over = 0;
        for (size_t i = 0; i < t->str_len; i++) {
            int d = t->str[i] - '0';
            if (acc > (INT64_MAX - d) / 10) {
                over = 1;
                break;
            }
            acc = acc * 10 + d;
        }
        /* FHIRPath integers are 32-bit; larger literals are out of range */
        if (!over && acc <= INT32_MAX) {
            v->kind = FP_INT;
            v->u.i = acc;
            return 0;
        }
        perr(p, t->pos, ERR_INVALID, "integer literal %.*s is out of range", (int)t->str_len,
             t->str);
        return -1;
    }
    v->kind = FP_DEC;
    if (fp_dec_parse(t->str, t->str_len, &v->u.d)) {
        perr(p, t->pos, ERR_INVALID, "decimal literal %.*s is out of range", (int)t->str_len,
             t->str);
        return -1;
    }
    return 0;
}

/* matches()/matchesFull()/replaceMatches() with a literal pattern: compile the regex
 * once, with the expression (a bad pattern is then a compile error). */
static int precompile_regex(parser *p, fp_node *n)
{
    const char *fn = n->fn->name;
    int full = !strcmp(fn, "matchesFull");
    if (!full && strcmp(fn, "matches") && strcmp(fn, "replaceMatches"))
        return 0;
    const fp_node *a = n->args[0];
    if (a->kind != N_LITERAL || a->lit.kind != FP_STR || a->lit.u.s.n == 0)
        return 0;
    fp_relist *item = arena_alloc(p->x->a, sizeof *item);
    if (!item) {
        perr(p, a->pos, ERR_NOMEM, "out of memory");
        return -1;
    }
    char msg[160];
    pcre2_code *re;
    int rc = fp_regex_compile(a->lit.u.s.p, a->lit.u.s.n, full, &re, msg, sizeof msg);
    if (rc) {
        perr(p, a->pos, rc, "%s", msg);
        return -1;
    }
    item->re = re;
    item->next = p->x->regexes;
    p->x->regexes = item;
    n->re = re;
    return 0;
}

static fp_node *parse_function(parser *p, const char *name, size_t name_len, size_t pos)
{
    fp_node *n = new_node(p, N_CALL, pos);
    if (!n)
        return NULL;
    n->name = name;
    n->name_len = name_len;
    n->fn = fp_func_find(name, name_len);
    if (!n->fn) {
        perr(p, pos, ERR_INVALID, "unknown function '%s'", name);
        return NULL;
    }
    if (lex(p)) /* '(' */
        return NULL;
    fp_node *args[8];
    int na = 0;
    if (!is_punct(p, ")")) {
        for (;;) {
            if (na == 8) {
                perr(p, p->tok.pos, ERR_INVALID, "too many arguments to %s()", name);
                return NULL;
            }
            if (n->fn->type_arg) {
                size_t tpos = p->tok.pos;
                fp_node *a = new_node(p, N_LITERAL, p->tok.pos);
                /* as()/ofType() need a real type; is() of an unknown type is simply
                 * false (R4's own invariant dom-r4b names R4B-only resources) */
                if (!a || parse_typespec(p, &a->type) ||
                    (strcmp(n->fn->name, "is") ? check_type(p, &a->type, tpos)
                                               : check_type_ns(p, &a->type, tpos)))
                    return NULL;
                n->type = a->type;
                args[na++] = a;
            } else {
                fp_node *a = parse_expr(p, 1);
                if (!a)
                    return NULL;
                args[na++] = a;
            }
            if (is_punct(p, ",")) {
                if (lex(p))
                    return NULL;
                continue;
            }
            break;
        }
    }
    if (expect(p, ")"))
        return NULL;
    if (na < n->fn->min_args || na > n->fn->max_args) {
        if (n->fn->min_args == n->fn->max_args)
            perr(p, pos, ERR_INVALID, "%s() takes %d argument%s, not %d", name,
                 n->fn->min_args, n->fn->min_args == 1 ? "" : "s", na);
        else
            perr(p, pos, ERR_INVALID, "%s() takes %d to %d arguments, not %d", name,
                 n->fn->min_args, n->fn->max_args, na);
        return NULL;
    }
    n->nargs = (uint8_t)na;
    if (na) {
        n->args = arena_alloc(p->x->a, (size_t)na * sizeof *n->args);
        if (!n->args) {
            perr(p, pos, ERR_NOMEM, "out of memory");
            return NULL;
        }
        memcpy(n->args, args, (size_t)na * sizeof *args);
    }
    if (precompile_regex(p, n))
        return NULL;
    return n;
}

/* identifier or function call, applied to `focus` (NULL at path start) */
static fp_node *parse_invocation(parser *p, fp_node *focus)
{
    if (p->tok.kind == T_DOLLAR) {
        fp_nkind k;
        if (p->tok.str_len == 4 && !memcmp(p->tok.str, "this", 4))
            k = N_THIS;
        else if (p->tok.str_len == 5 && !memcmp(p->tok.str, "index", 5))
            k = N_INDEXVAR;
        else if (p->tok.str_len == 5 && !memcmp(p->tok.str, "total", 5))
            k = N_TOTAL;
        else {
            perr(p, p->tok.pos, ERR_INVALID, "unknown special variable '$%.*s'",
                 (int)p->tok.str_len, p->tok.str);
            return NULL;
        }
        fp_node *n = new_node(p, k, p->tok.pos);
        if (!n || lex(p))
            return NULL;
        if (focus) {
            perr(p, n->pos, ERR_INVALID, "'$%s' cannot follow '.'",
                 k == N_THIS ? "this" : k == N_INDEXVAR ? "index" : "total");
            return NULL;
        }
        return n;
    }
    if (p->tok.kind != T_IDENT) {
        char tmp[48];
        perr(p, p->tok.pos, ERR_INVALID, "expected a name but found %s",
             tok_desc(p, tmp, sizeof tmp));
        return NULL;
    }
    token id = p->tok;
    if (lex(p))
        return NULL;
    fp_node *n;
    if (is_punct(p, "(") && !id.delimited) {
        n = parse_function(p, id.str, id.str_len, id.pos);
    } else {
        n = new_node(p, N_MEMBER, id.pos);
        if (n) {
            n->name = id.str;
            n->name_len = id.str_len;
            if (!focus && id.str[0] >= 'A' && id.str[0] <= 'Z')
                n->ntype = fhir_type_find(id.str, id.str_len);
        }
    }
    if (n)
        n->focus = focus;
    return n;
}

static fp_node *parse_term(parser *p)
{
    token t = p->tok;
    fp_node *n;
    switch (t.kind) {
    case T_EOF:
        perr(p, t.pos, ERR_INVALID, "unexpected end of expression");
        return NULL;
    case T_STRING:
        n = new_node(p, N_LITERAL, t.pos);
        if (!n)
            return NULL;
        n->lit.kind = FP_STR;
        n->lit.u.s.p = t.str;
        n->lit.u.s.n = t.str_len;
        if (lex(p))
            return NULL;
        return n;
    case T_NUMBER:
        n = new_node(p, N_LITERAL, t.pos);
        if (!n || make_number(p, &t, &n->lit) || lex(p))
            return NULL;
        if (p->tok.kind == T_STRING ||
            (p->tok.kind == T_IDENT && !p->tok.delimited && is_calendar_word(p->tok.str))) {
            fp_val num = n->lit;
            memset(&n->lit, 0, sizeof n->lit);
            n->lit.kind = FP_QTY;
            fp_dec d;
            if (num.kind == FP_INT)
                d = fp_dec_from_i64(num.u.i);
            else
                d = num.u.d;
            int rc = fp_qty_make(d, p->tok.str, p->tok.str_len, &n->lit.u.q);
            if (rc == ERR_INVALID && p->tok.kind == T_STRING && p->tok.str_len > 0 &&
                p->tok.str_len < FP_QTY_UNIT_MAX && !memchr(p->tok.str, 0, p->tok.str_len)) {
                /* a unit UCUM does not know: a valid literal that compares with nothing */
                memset(&n->lit.u.q, 0, sizeof n->lit.u.q);
                n->lit.u.q.value = d;
                memcpy(n->lit.u.q.unit, p->tok.str, p->tok.str_len);
                rc = 0;
            }
            if (rc) {
                perr(p, p->tok.pos, ERR_INVALID, "invalid unit '%.*s'", (int)p->tok.str_len,
                     p->tok.str);
                return NULL;
            }
            if (lex(p))
                return NULL;
        }
        return n;
    case T_DATE: {
        n = new_node(p, N_LITERAL, t.pos);
        if (!n)
            return NULL;
        if (fp_dt_parse_literal(t.str, t.str_len, &n->lit.u.dt)) {
            perr(p, t.pos, ERR_INVALID, "invalid date/time literal '@%.*s'", (int)t.str_len,
                 t.str);
            return NULL;
        }
        n->lit.kind = n->lit.u.dt.kind == FP_DT_TIME   ? FP_TIME
                      : n->lit.u.dt.kind == FP_DT_DATE ? FP_DATE
                                                       : FP_DATETIME;
        if (lex(p))
            return NULL;
        return n;
    }
    case T_EXTVAR:
        n = new_node(p, N_VAR, t.pos);
        if (!n)
            return NULL;
        n->name = t.str;
        n->name_len = t.str_len;
        if (lex(p))
            return NULL;
        return n;
    case T_IDENT:
        if (!t.delimited && (!strcmp(t.str, "true") || !strcmp(t.str, "false"))) {
            n = new_node(p, N_LITERAL, t.pos);
            if (!n)
                return NULL;
            n->lit.kind = FP_BOOL;
            n->lit.u.b = t.str[0] == 't';
            if (lex(p))
                return NULL;
            return n;
        }
        return parse_invocation(p, NULL);
    case T_DOLLAR:
        return parse_invocation(p, NULL);
    case T_PUNCT:
        if (is_punct(p, "(")) {
            if (lex(p))
                return NULL;
            n = parse_expr(p, 1);
            if (!n || expect(p, ")"))
                return NULL;
            return n;
        }
        if (is_punct(p, "{")) {
            if (lex(p) || expect(p, "}"))
                return NULL;
            return new_node(p, N_EMPTY, t.pos);
        }
        break;
    }
    char tmp[48];
    perr(p, t.pos, ERR_INVALID, "unexpected %s", tok_desc(p, tmp, sizeof tmp));
    return NULL;
}

static fp_node *parse_postfix(parser *p)
{
    fp_node *n = parse_term(p);
    while (n) {
        if (is_punct(p, ".")) {
            if (lex(p))
                return NULL;
            n = parse_invocation(p, n);
        } else if (is_punct(p, "[")) {
            size_t pos = p->tok.pos;
            if (lex(p))
                return NULL;
            fp_node *idx = parse_expr(p, 1);
            if (!idx || expect(p, "]"))
                return NULL;
            fp_node *m = new_node(p, N_INDEX, pos);
            if (!m)
                return NULL;
            m->focus = n;
            m->args = arena_alloc(p->x->a, sizeof *m->args);
            if (!m->args) {
                perr(p, pos, ERR_NOMEM, "out of memory");
                return NULL;
            }
            m->args[0] = idx;
            m->nargs = 1;
            n = m;
        } else {
            break;
        }
    }
    return n;
}

static fp_node *parse_unary(parser *p)
{
    if (++p->depth > FP_MAX_DEPTH) {
        perr(p, p->tok.pos, ERR_TOOBIG, "expression nested deeper than %d levels",
             FP_MAX_DEPTH);
        return NULL;
    }
    fp_node *n;
    if (is_punct(p, "-") || is_punct(p, "+")) {
        size_t pos = p->tok.pos;
        int neg = p->tok.str[0] == '-';
        if (lex(p))
            return NULL;
        fp_node *a = parse_unary(p);
        if (!a)
            return NULL;
        if (!neg) {
            n = a;
        } else {
            n = new_node(p, N_NEG, pos);
            if (!n)
                return NULL;
            n->args = arena_alloc(p->x->a, sizeof *n->args);
            if (!n->args) {
                perr(p, pos, ERR_NOMEM, "out of memory");
                return NULL;
            }
            n->args[0] = a;
            n->nargs = 1;
        }
    } else {
        n = parse_postfix(p);
    }
    p->depth--;
    return n;
}

static fp_node *parse_expr(parser *p, int minprec)
{
    if (++p->depth > FP_MAX_DEPTH) {
        perr(p, p->tok.pos, ERR_TOOBIG, "expression nested deeper than %d levels",
             FP_MAX_DEPTH);
        return NULL;
    }
    fp_node *left = parse_unary(p);
    int prec;
    fp_op op;
    while (left && binop_of(p, &prec, &op) && prec >= minprec) {
        size_t pos = p->tok.pos;
        int is_type = prec == 8;
        int is_is = is_type && !strcmp(p->tok.str, "is");
        if (lex(p))
            return NULL;
        fp_node *n = new_node(p, is_type ? (is_is ? N_IS : N_AS) : N_BINOP, pos);
        if (!n)
            return NULL;
        n->op = (uint8_t)op;
        n->args = arena_alloc(p->x->a, 2 * sizeof *n->args);
        if (!n->args) {
            perr(p, pos, ERR_NOMEM, "out of memory");
            return NULL;
        }
        n->args[0] = left;
        if (is_type) {
            n->nargs = 1;
            size_t tpos = p->tok.pos;
            if (parse_typespec(p, &n->type) ||
                (is_is ? check_type_ns(p, &n->type, tpos) : check_type(p, &n->type, tpos)))
                return NULL;
        } else {
            n->nargs = 2;
            n->args[1] = parse_expr(p, prec + 1);
            if (!n->args[1])
                return NULL;
        }
        left = n;
    }
    p->depth--;
    return left;
}

/* Offset of the first byte that is not part of valid UTF-8 (overlongs, surrogates
 * and code points past U+10FFFF rejected), or len. */
static size_t utf8_check(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t need;
        unsigned cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
            return i;
        i += need + 1;
    }
    return len;
}

int fp_parse(fp_expr *x, fp_error *err)
{
    parser p = {.x = x, .s = x->src, .len = x->len, .err = err};
    if (x->len > FP_MAX_EXPR_LEN) {
        perr(&p, 0, ERR_TOOBIG, "expression longer than %u bytes", FP_MAX_EXPR_LEN);
        return ERR_TOOBIG;
    }
    size_t bad = utf8_check((const unsigned char *)x->src, x->len);
    if (bad < x->len) {
        perr(&p, bad, ERR_INVALID, "invalid UTF-8 at byte %zu", bad);
        return ERR_INVALID;
    }
    if (lex(&p))
        return p.failed;
    if (p.tok.kind == T_EOF) {
        perr(&p, 0, ERR_INVALID, "empty expression");
        return ERR_INVALID;
    }
    x->root = parse_expr(&p, 1);
    if (!x->root)
        return p.failed ? p.failed : ERR_INVALID;
    if (p.tok.kind != T_EOF) {
        char tmp[48];
        perr(&p, p.tok.pos, ERR_INVALID, "unexpected %s after the expression",
             tok_desc(&p, tmp, sizeof tmp));
        return ERR_INVALID;
    }
    return 0;
}
