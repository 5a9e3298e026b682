/*
 * The Error API: how errors are set, kept, prefixed, moved and freed.
 */
#include "qemu/osdep.h"
#include "qapi/error.h"

static bool fail_with(int value, Error **errp)
{
    if (value < 0) {
        error_setg(errp, "value %d is negative", value);
        return false;
    }
    return true;
}

static void test_setg(void)
{
    Error *err = NULL;

    g_assert_true(fail_with(1, &err));
    g_assert_null(err);
    g_assert_false(fail_with(-3, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, "value -3 is negative");
    g_assert_cmpint(error_get_class(err), ==, ERROR_CLASS_GENERIC_ERROR);
    g_assert_cmpstr(error_class_name(error_get_class(err)), ==,
                    "GenericError");
    error_free_or_abort(&err);
    g_assert_null(err);
}

static void test_set_class(void)
{
    g_autoptr(Error) err = NULL;

    error_set(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
              "The command %s has not been found", "frobnicate");
    g_assert_cmpint(error_get_class(err), ==, ERROR_CLASS_COMMAND_NOT_FOUND);
    g_assert_cmpstr(error_class_name(error_get_class(err)), ==,
                    "CommandNotFound");
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "The command frobnicate has not been found");
}

static void test_null_errp_ignores(void)
{
    /* Must neither crash nor leak (the ASan build checks the latter). */
    g_assert_false(fail_with(-1, NULL));
    error_setg_errno(NULL, EIO, "ignored");
    error_prepend(NULL, "ignored: ");
    error_propagate(NULL, NULL);
}

static void test_first_wins(void)
{
    g_autoptr(Error) err = NULL;

    error_setg(&err, "first");
    error_setg(&err, "second");
    g_assert_cmpstr(error_get_pretty(err), ==, "first");
}

static void test_errno(void)
{
    g_autoptr(Error) err = NULL;

    error_setg_errno(&err, ENOENT, "cannot open %s", "vm.snap");
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "cannot open vm.snap: No such file or directory");
}

static void test_prepend(void)
{
    g_autoptr(Error) err = NULL;
    Error *none = NULL;

    error_prepend(&none, "nothing to prefix: ");
    g_assert_null(none);

    error_setg(&err, "disk full");
    error_prepend(&err, "section '%s': ", "ram");
    error_prepend(&err, "migration failed: ");
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "migration failed: section 'ram': disk full");
}

static void test_propagate(void)
{
    Error *dst = NULL;
    Error *local = NULL;

    /* Propagating nothing leaves the destination alone. */
    error_propagate(&dst, NULL);
    g_assert_null(dst);

    error_setg(&local, "inner");
    error_propagate(&dst, local);
    g_assert_cmpstr(error_get_pretty(dst), ==, "inner");

    /* The destination keeps its first error; the second is freed. */
    local = NULL;
    error_setg(&local, "later");
    error_propagate(&dst, local);
    g_assert_cmpstr(error_get_pretty(dst), ==, "inner");

    /* To NULL: freed (the ASan build would report a leak otherwise). */
    local = NULL;
    error_setg(&local, "dropped");
    error_propagate(NULL, local);

    error_free(dst);
}

static void test_copy(void)
{
    g_autoptr(Error) err = NULL;

    error_set(&err, ERROR_CLASS_DEVICE_NOT_FOUND, "no device %d", 4);
    g_autoptr(Error) copy = error_copy(err);
    g_assert_true(copy != err);
    g_assert_cmpstr(error_get_pretty(copy), ==, "no device 4");
    g_assert_cmpint(error_get_class(copy), ==, ERROR_CLASS_DEVICE_NOT_FOUND);
    g_assert_true(error_get_pretty(copy) != error_get_pretty(err));
}

static void test_error_abort(void)
{
    if (g_test_subprocess()) {
        fail_with(-7, &error_abort);
        return;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*unexpected error: value -7 is negative*");
}

static void test_error_abort_propagate(void)
{
    if (g_test_subprocess()) {
        Error *local = NULL;
        error_setg(&local, "propagated failure");
        error_propagate(&error_abort, local);
        return;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*unexpected error: propagated failure*");
}

static void test_report(void)
{
    if (g_test_subprocess()) {
        Error *err = NULL;
        error_setg(&err, "reported");
        error_report_err(err);
        error_report("plain %d", 1);
        warn_report("careful");
        return;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("snapvm: reported\nsnapvm: plain 1\n"
                              "snapvm: warning: careful\n");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/error/setg", test_setg);
    g_test_add_func("/error/set-class", test_set_class);
    g_test_add_func("/error/null-errp-ignores", test_null_errp_ignores);
    g_test_add_func("/error/first-wins", test_first_wins);
    g_test_add_func("/error/errno-appended", test_errno);
    g_test_add_func("/error/prepend", test_prepend);
    g_test_add_func("/error/propagate", test_propagate);
    g_test_add_func("/error/copy", test_copy);
    g_test_add_func("/error/abort-on-setg", test_error_abort);
    g_test_add_func("/error/abort-on-propagate", test_error_abort_propagate);
    g_test_add_func("/error/report", test_report);
    return g_test_run();
}
