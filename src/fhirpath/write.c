/*
 * write.c -- FHIRPath results as JSON, with FHIR JSON conventions.
 *
 * Items read from a resource are written from their JSON node, so a decimal
 * keeps its spelling ("1.50") and an object comes out as it was. Computed values
 * are written in the form FHIR JSON would use: dates/times as strings without
 * the literal's '@'/'T', quantities as Quantity objects, type() results as
 * {"namespace":..,"name":..}. A primitive that has only extensions (no value)
 * is not a value and is left out.
 */
#include <stdio.h>
#include <string.h>

#include "fhirpath/internal.h"

void fp_write_val(buf *b, const fp_val *v)
{
    char tmp[64];
    if (v->node && v->kind != FP_OBJ && !v->novalue) {
        json_write(b, v->node, 0);
        return;
    }
    switch (v->kind) {
    case FP_BOOL:
        buf_puts(b, v->u.b ? "true" : "false");
        break;
    case FP_INT:
        buf_put_i64(b, v->u.i);
        break;
    case FP_DEC:
        fp_dec_write(v->u.d, b);
        break;
    case FP_STR:
        json_write_string(b, v->u.s.p, v->u.s.n);
        break;
    case FP_DATE:
    case FP_DATETIME:
    case FP_TIME: {
        size_t n = fp_dt_format(v->u.dt, tmp, sizeof tmp);
        json_write_string(b, tmp, n);
        break;
    }
    case FP_QTY: {
        const fp_qty *q = &v->u.q;
        buf_puts(b, "{\"value\":");
        fp_dec_write(q->value, b);
        buf_puts(b, ",\"unit\":");
        json_write_string(b, q->unit, strlen(q->unit));
        if (!(q->flags & FP_QTY_CALENDAR)) {
            buf_puts(b, ",\"system\":\"http://unitsofmeasure.org\",\"code\":");
            const char *code = fp_qty_ucum_code(q);
            json_write_string(b, code, strlen(code));
        }
        buf_putc(b, '}');
        break;
    }
    case FP_OBJ:
        if (v->node)
            json_write(b, v->node, 0);
        else
            buf_puts(b, "null");
        break;
    case FP_TYPE:
        buf_puts(b, "{\"namespace\":");
        json_write_string(b, v->u.t.ns, strlen(v->u.t.ns));
        buf_puts(b, ",\"name\":");
        json_write_string(b, v->u.t.name, strlen(v->u.t.name));
        buf_putc(b, '}');
        break;
    default:
        buf_puts(b, "null");
    }
}

void fp_write_json(buf *b, const fp_coll *c)
{
    buf_putc(b, '[');
    int first = 1;
    for (size_t i = 0; i < c->n; i++) {
        if (c->v[i].novalue)
            continue;
        if (!first)
            buf_putc(b, ',');
        first = 0;
        fp_write_val(b, &c->v[i]);
    }
    buf_putc(b, ']');
}
