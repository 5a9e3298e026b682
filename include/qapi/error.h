/*
 * Error reporting, QEMU style: a function that can fail takes a trailing
 * "Error **errp", sets it with error_setg() and returns false / NULL / -1.
 * Callers pass NULL to ignore, &error_abort to assert that nothing fails, or
 * the address of their own "Error *err = NULL" to inspect it.
 *
 * Error classes are the ones QMP reports to clients.
 */
#ifndef QAPI_ERROR_H
#define QAPI_ERROR_H

typedef enum ErrorClass {
    ERROR_CLASS_GENERIC_ERROR,
    ERROR_CLASS_COMMAND_NOT_FOUND,
    ERROR_CLASS_DEVICE_NOT_ACTIVE,
    ERROR_CLASS_DEVICE_NOT_FOUND,
} ErrorClass;

typedef struct Error Error;

/* Pass as errp to abort() on any error: for calls that cannot fail. */
extern Error *error_abort;

void error_setg_internal(Error **errp, ErrorClass cls, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

#define error_setg(errp, ...) \
    error_setg_internal(errp, ERROR_CLASS_GENERIC_ERROR, __VA_ARGS__)
#define error_set(errp, cls, ...) error_setg_internal(errp, cls, __VA_ARGS__)

/* Like error_setg(), with ": <strerror(os_errno)>" appended. */
void error_setg_errno(Error **errp, int os_errno, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Prepend "prefix" to the message of *errp, if set. */
void error_prepend(Error **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Move local_err into *dst_errp (freeing it if dst_errp is NULL or set). */
void error_propagate(Error **dst_errp, Error *local_err);

const char *error_get_pretty(const Error *err);
ErrorClass error_get_class(const Error *err);
const char *error_class_name(ErrorClass cls);
Error *error_copy(const Error *err);
void error_free(Error *err);
void error_free_or_abort(Error **errp);

/* Print "snapvm: <msg>" to stderr and free the error. */
void error_report_err(Error *err);
void error_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void warn_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Error, error_free)

#endif
