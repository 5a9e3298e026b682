/*
 * Error objects (see include/qapi/error.h).
 */
#include "qemu/osdep.h"
#include "qapi/error.h"

struct Error {
    char *msg;
    ErrorClass cls;
};

/* A sentinel whose address callers pass; never dereferenced as an Error. */
Error *error_abort;

static void error_install(Error **errp, ErrorClass cls, char *msg)
{
    if (errp == &error_abort) {
        fprintf(stderr, "snapvm: unexpected error: %s\n", msg);
        abort();
    }
    if (!errp) {
        g_free(msg);
        return;
    }
    /* The first error wins: a later one is usually a consequence. */
    if (*errp) {
        g_free(msg);
        return;
    }
    Error *err = g_new0(Error, 1);
    err->msg = msg;
    err->cls = cls;
    *errp = err;
}

void error_setg_internal(Error **errp, ErrorClass cls, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_install(errp, cls, msg);
}

void error_setg_errno(Error **errp, int os_errno, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_install(errp, ERROR_CLASS_GENERIC_ERROR,
                  g_strdup_printf("%s: %s", msg, g_strerror(os_errno)));
}

void error_prepend(Error **errp, const char *fmt, ...)
{
    va_list ap;

    if (!errp || errp == &error_abort || !*errp) {
        return;
    }
    va_start(ap, fmt);
    g_autofree char *prefix = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    char *msg = g_strconcat(prefix, (*errp)->msg, NULL);
    g_free((*errp)->msg);
    (*errp)->msg = msg;
}

void error_propagate(Error **dst_errp, Error *local_err)
{
    if (!local_err) {
        return;
    }
    if (dst_errp == &error_abort) {
        fprintf(stderr, "snapvm: unexpected error: %s\n", local_err->msg);
        abort();
    }
    if (!dst_errp || *dst_errp) {
        error_free(local_err);
        return;
    }
    *dst_errp = local_err;
}

const char *error_get_pretty(const Error *err)
{
    return err->msg;
}

ErrorClass error_get_class(const Error *err)
{
    return err->cls;
}

const char *error_class_name(ErrorClass cls)
{
    switch (cls) {
    case ERROR_CLASS_COMMAND_NOT_FOUND:
        return "CommandNotFound";
    case ERROR_CLASS_DEVICE_NOT_ACTIVE:
        return "DeviceNotActive";
    case ERROR_CLASS_DEVICE_NOT_FOUND:
        return "DeviceNotFound";
    case ERROR_CLASS_GENERIC_ERROR:
    default:
        return "GenericError";
    }
}

Error *error_copy(const Error *err)
{
    Error *copy = g_new0(Error, 1);
    copy->msg = g_strdup(err->msg);
    copy->cls = err->cls;
    return copy;
}

void error_free(Error *err)
{
    if (err) {
        g_free(err->msg);
        g_free(err);
    }
}

void error_free_or_abort(Error **errp)
{
    g_assert(errp && *errp);
    error_free(*errp);
    *errp = NULL;
}

void error_report_err(Error *err)
{
    fprintf(stderr, "snapvm: %s\n", err->msg);
    error_free(err);
}

void error_report(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "snapvm: %s\n", msg);
}

void warn_report(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "snapvm: warning: %s\n", msg);
}
