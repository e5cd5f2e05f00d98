/* err.c -- names for the error codes of err.h. */
#include "base/err.h"

const char *err_str(int code)
{
    switch (code) {
    case ERR_OK: return "ok";
    case ERR_NOMEM: return "out of memory";
    case ERR_INVALID: return "invalid input";
    case ERR_NOTFOUND: return "not found";
    case ERR_GONE: return "deleted";
    case ERR_CONFLICT: return "version conflict";
    case ERR_TOOBIG: return "size limit exceeded";
    case ERR_IO: return "storage or I/O failure";
    case ERR_UNSUPPORTED: return "not supported";
    case ERR_LIMIT: return "work limit exceeded";
    case ERR_EXISTS: return "already exists";
    case ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}
