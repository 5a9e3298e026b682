/*
 * The fault-injection switch itself: the Nth call fails and only it, with
 * the kind's errno, and the hooked helpers then report their real errors.
 */
#include "qemu/osdep.h"
#include "qemu/fault-inject.h"
#include "qemu/userfaultfd.h"
#include "migration/channel.h"
#include <sys/mman.h>

static void test_nth_call_fails(void)
{
    g_assert_true(fault_inject_configure("channel-write:3", &error_abort));
    g_assert_true(fault_inject_armed);
    for (int i = 1; i <= 6; i++) {
        errno = 0;
        bool fail = fault_inject(FAULT_CHANNEL_WRITE);
        g_assert_cmpint(fail, ==, i == 3);
        if (fail) {
            g_assert_cmpint(errno, ==, fault_inject_errno(FAULT_CHANNEL_WRITE));
        }
        /* Other kinds are counted, never failed. */
        g_assert_false(fault_inject(FAULT_UFFD_IOCTL));
    }
    g_assert_cmpuint(fault_inject_calls(FAULT_CHANNEL_WRITE), ==, 6);
    g_assert_cmpuint(fault_inject_injected(FAULT_CHANNEL_WRITE), ==, 1);
    g_assert_cmpuint(fault_inject_injected(FAULT_UFFD_IOCTL), ==, 0);

    g_assert_true(fault_inject_configure(NULL, &error_abort));
    g_assert_false(fault_inject_armed);
    g_assert_false(fault_inject(FAULT_CHANNEL_WRITE));
}

static void test_several_kinds(void)
{
    g_assert_true(fault_inject_configure("alloc:1, fork:2", &error_abort));
    g_assert_true(fault_inject(FAULT_ALLOC));
    g_assert_false(fault_inject(FAULT_ALLOC));
    g_assert_false(fault_inject(FAULT_FORK));

    g_autoptr(GError) gerr = NULL;
    g_assert_true(fault_inject_gerror(FAULT_FORK, &gerr));
    g_assert_nonnull(gerr);
    g_assert_cmpstr(gerr->message, ==, g_strerror(EAGAIN));
    fault_inject_configure(NULL, &error_abort);
}

static void test_bad_specs_refused(void)
{
    static const char *const bad[] = {
        "uffd-ioctl", "uffd-ioctl:0", "uffd-ioctl:x", "no-such-kind:1",
        "uffd-ioctl:1,", "channel-write:-1",
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        Error *err = NULL;
        g_assert_false(fault_inject_configure(bad[i], &err));
        g_assert_nonnull(err);
        /* The message lists the kinds, so a typo is easy to fix. */
        g_assert_nonnull(strstr(error_get_pretty(err), "pagemap-read"));
        error_free(err);
    }
    for (int k = 0; k < FAULT__MAX; k++) {
        g_assert_cmpint(fault_kind_from_name(fault_kind_name(k)), ==, k);
    }
    g_assert_false(fault_inject_armed);
}

/* The real helper takes its real error path, message and all. */
static void test_uffd_writeprotect_reports_real_error(void)
{
    Error *err = NULL;
    int uffd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP, &err);

    if (uffd < 0) {
        g_test_skip(error_get_pretty(err));
        error_free(err);
        return;
    }
    size_t len = 2 * MiB;
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(mem != MAP_FAILED);
    memset(mem, 1, len);
    g_assert_true(uffd_register(uffd, mem, len, UFFDIO_REGISTER_MODE_WP,
                                &error_abort));

    g_assert_true(fault_inject_configure("uffd-ioctl:1", &error_abort));
    g_assert_false(uffd_writeprotect(uffd, mem, len, true, false, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "UFFDIO_WRITEPROTECT"));
    g_assert_nonnull(strstr(error_get_pretty(err), g_strerror(ENOMEM)));
    error_free(err);
    err = NULL;
    /* The second call goes through. */
    g_assert_true(uffd_writeprotect(uffd, mem, len, true, false, &err));
    g_assert_true(uffd_writeprotect(uffd, mem, len, false, false, &err));
    fault_inject_configure(NULL, &error_abort);

    g_assert_true(uffd_unregister(uffd, mem, len, &error_abort));
    close(uffd);
    munmap(mem, len);
}

static void test_uffd_open_fails_both_ways(void)
{
    Error *err = NULL;

    g_assert_true(fault_inject_configure("uffd-open:1", &error_abort));
    g_assert_cmpint(uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP, &err), <, 0);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(error_get_pretty(err), "userfaultfd"));
    error_free(err);
    g_assert_cmpuint(fault_inject_calls(FAULT_UFFD_OPEN), ==, 1);
    fault_inject_configure(NULL, &error_abort);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/fault-inject/nth-call-fails", test_nth_call_fails);
    g_test_add_func("/fault-inject/several-kinds", test_several_kinds);
    g_test_add_func("/fault-inject/bad-specs-refused",
                    test_bad_specs_refused);
    g_test_add_func("/fault-inject/uffd-writeprotect-real-error",
                    test_uffd_writeprotect_reports_real_error);
    g_test_add_func("/fault-inject/uffd-open-fails-both-ways",
                    test_uffd_open_fails_both_ways);
    return g_test_run();
}
