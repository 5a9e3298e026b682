/*
 * What QEMU clients put in migration URIs and capability lists: file:
 * with ",offset=" (both ways, and what is refused beside it), QEMU's
 * capabilities that snapvm does not implement (off accepted, on refused
 * by name; none changes while a migration runs), MIGRATION_PASS, and
 * add-fd / remove-fd / query-fdsets with file:/dev/fdset/N, as libvirt
 * hands a migration a file.  Only libqtest: the shared migration helpers
 * are not used here.
 */
#include "libqtest.h"

#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <glib/gstdio.h>

#define OFFSET 4096

static QTestState *start_idle(const char *extra)
{
    g_autofree char *idle = qtest_guest_path("idle");

    return qtest_initf("-m 32M -kernel %s %s", idle, extra);
}

static char *migrate_status(QTestState *qts)
{
    g_autoptr(JsonNode) ret = qtest_qmp_assert_success(
        qts, "{\"execute\": \"query-migrate\"}");
    JsonObject *o = json_node_get_object(ret);

    return g_strdup(json_object_get_string_member(o, "status"));
}

/* Poll query-migrate until it reads @want (or fail on 'failed'). */
static void wait_migration(QTestState *qts, const char *want)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

    for (;;) {
        g_autofree char *status = migrate_status(qts);

        if (!strcmp(status, want)) {
            return;
        }
        g_assert_cmpstr(status, !=, "failed");
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(20 * 1000);
    }
}

static void migrate_ok(QTestState *qts, const char *uri)
{
    g_autofree char *quoted = qtest_json_quote(uri);
    json_node_unref(qtest_qmp_assert_success(
        qts, "{\"execute\": \"migrate\", \"arguments\": {\"uri\": %s}}",
        quoted));
}

static const char *migrate_error(QTestState *qts, const char *uri,
                                 JsonObject **reply)
{
    g_autofree char *quoted = qtest_json_quote(uri);

    *reply = qtest_qmp(qts, "{\"execute\": \"migrate\", \"arguments\": "
                       "{\"uri\": %s}}", quoted);
    return qtest_reply_error_desc(*reply, "GenericError");
}

/*
 * A save of the paused 32 MiB guest at 1 MiB/s: it runs for half a
 * minute, time enough to act on it while it runs.
 */
static void migrate_slowly(QTestState *qts, const char *uri)
{
    json_node_unref(qtest_qmp_assert_success(qts,
        "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
        "{\"max-bandwidth\": 1048576}}"));
    migrate_ok(qts, uri);
}

static void migrate_cancel_and_wait(QTestState *qts)
{
    json_node_unref(qtest_qmp_assert_success(qts,
        "{\"execute\": \"migrate_cancel\"}"));
    wait_migration(qts, "cancelled");
}

/*
 * file:PATH,offset=N writes the stream N bytes into PATH, keeping what
 * was there before N, and -incoming with the same URI reads it back.
 */
static void test_file_offset_round_trip(void)
{
    QTestState *src = start_idle("");
    g_autofree char *path = g_build_filename(qtest_tmpdir(src), "vm.snap",
                                             NULL);
    g_autofree char *uri = g_strdup_printf("file:%s,offset=0x%x", path,
                                           OFFSET);
    g_autofree char *head = g_malloc(OFFSET);
    g_autofree char *got = NULL;
    gsize len;

    memset(head, 'h', OFFSET);
    g_assert_true(g_file_set_contents(path, head, OFFSET, NULL));
    json_node_unref(qtest_qmp_assert_success(
        src, "{\"execute\": \"stop\"}"));
    migrate_ok(src, uri);
    wait_migration(src, "completed");

    g_assert_true(g_file_get_contents(path, &got, &len, NULL));
    g_assert_cmpuint(len, >, OFFSET + 4);
    g_assert_true(memcmp(got, head, OFFSET) == 0);
    g_assert_true(memcmp(got + OFFSET, "QEVM", 4) == 0);
    /* No file named after the option. */
    g_autofree char *literal = g_strdup_printf("%s,offset=0x%x", path,
                                               OFFSET);
    g_assert_false(g_file_test(literal, G_FILE_TEST_EXISTS));

    g_autofree char *incoming = g_strdup_printf("-S -incoming %s", uri);
    QTestState *dst = start_idle(incoming);
    wait_migration(dst, "completed");
    qtest_quit(dst);
    qtest_quit(src);
}

/* Other options, bad numbers, and mapped-ram with an offset: refused. */
static void test_file_options_refused(void)
{
    QTestState *qts = start_idle("-S");
    g_autofree char *path = g_build_filename(qtest_tmpdir(qts), "x.snap",
                                             NULL);
    g_autofree char *bad_key = g_strdup_printf("file:%s,mode=0600", path);
    g_autofree char *bad_num = g_strdup_printf("file:%s,offset=4k", path);
    g_autofree char *offset = g_strdup_printf("file:%s,offset=4096", path);
    g_autoptr(JsonObject) r1 = NULL, r2 = NULL, r3 = NULL;

    g_assert_cmpstr(migrate_error(qts, bad_key, &r1), ==,
                    "file: migration URI option 'mode' is not supported "
                    "(only offset=N)");
    g_assert_cmpstr(migrate_error(qts, bad_num, &r2), ==,
                    "file: migration URI option 'offset' expects a number "
                    "of bytes (decimal or 0x hexadecimal), not '4k'");
    json_node_unref(qtest_qmp_assert_success(qts,
        "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
        "{\"capabilities\": [{\"capability\": \"mapped-ram\", "
        "\"state\": true}]}}"));
    g_assert_nonnull(strstr(migrate_error(qts, offset, &r3),
                            "'mapped-ram' cannot be used with a file: "
                            "offset"));
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    qtest_quit(qts);
}

/*
 * A file name is not URI text: snapvm-img reads "vm,x=1.snap" as that
 * file, whatever file: URIs do with ",x=".
 */
static void test_img_file_name_with_comma(void)
{
    QTestState *qts = start_idle("-S");
    g_autofree char *path = g_build_filename(qtest_tmpdir(qts), "vm.snap",
                                             NULL);
    g_autofree char *odd = g_build_filename(qtest_tmpdir(qts),
                                            "vm,offset=4096.snap", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *dir = g_path_get_dirname(qtest_binary());
    g_autofree char *img = g_build_filename(dir, "snapvm-img", NULL);
    g_autofree char *out = NULL, *err = NULL;
    int status;

    migrate_ok(qts, uri);
    wait_migration(qts, "completed");
    g_assert_cmpint(g_rename(path, odd), ==, 0);
    const char *argv[] = { img, "check", odd, NULL };
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT,
                               NULL, NULL, &out, &err, &status, NULL));
    g_assert_cmpstr(err, ==, "");
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    qtest_quit(qts);
}

static JsonObject *set_capability(QTestState *qts, const char *name,
                                  bool on)
{
    return qtest_qmp(qts, "{\"execute\": \"migrate-set-capabilities\", "
                     "\"arguments\": {\"capabilities\": [{\"capability\": "
                     "\"%s\", \"state\": %s}]}}", name,
                     on ? "true" : "false");
}

/*
 * QEMU's capabilities snapvm lacks: a list that turns them off passes,
 * turning one on names it; an unknown name is still refused.
 */
static void test_qemu_capabilities_off_ok_on_refused(void)
{
    QTestState *qts = start_idle("-S");
    static const char *const names[] = {
        "xbzrle", "postcopy-ram", "multifd", "zero-blocks", "return-path",
        "auto-converge", "dirty-bitmaps", "x-ignore-shared",
    };

    json_node_unref(qtest_qmp_assert_success(qts,
        "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
        "{\"capabilities\": [{\"capability\": \"xbzrle\", \"state\": false},"
        " {\"capability\": \"events\", \"state\": true},"
        " {\"capability\": \"postcopy-ram\", \"state\": false},"
        " {\"capability\": \"multifd\", \"state\": false}]}}"));
    for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autoptr(JsonObject) off = set_capability(qts, names[i], false);
        g_autoptr(JsonObject) on = set_capability(qts, names[i], true);
        g_autofree char *want = g_strdup_printf(
            "Capability '%s' is not implemented by snapvm: it can only be "
            "turned off", names[i]);

        g_assert_true(json_object_has_member(off, "return"));
        g_assert_cmpstr(qtest_reply_error_desc(on, "GenericError"), ==,
                        want);
    }
    g_autoptr(JsonObject) unknown = set_capability(qts, "no-such-cap",
                                                   false);
    g_assert_cmpstr(qtest_reply_error_desc(unknown, "GenericError"), ==,
                    "Parameter 'capability' does not accept value "
                    "'no-such-cap'");
    /* HMP takes the same path. */
    g_autofree char *hmp_on = qtest_hmp(qts, "migrate_set_capability "
                                        "xbzrle on");
    g_autofree char *hmp_off = qtest_hmp(qts, "migrate_set_capability "
                                         "xbzrle off");
    g_assert_nonnull(strstr(hmp_on, "Capability 'xbzrle' is not "
                            "implemented by snapvm"));
    g_assert_cmpstr(hmp_off, ==, "");
    /* The all-off list kept the one it knew. */
    g_autofree char *caps = qtest_hmp(qts, "info migrate_capabilities");
    g_assert_nonnull(strstr(caps, "events: on"));
    qtest_quit(qts);
}

/*
 * While a migration runs, capabilities and parameters stay as they are:
 * QMP and HMP refuse a change with QEMU's error, a QEMU-only capability
 * turned off included, and accept it again once the migration is over.
 */
static void test_options_locked_while_migrating(void)
{
    QTestState *qts = start_idle("-S");
    g_autofree char *path = g_build_filename(qtest_tmpdir(qts), "vm.snap",
                                             NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    static const char busy[] = "There's a migration process in progress";

    migrate_slowly(qts, uri);
    g_autoptr(JsonObject) cap = set_capability(qts, "events", true);
    g_autoptr(JsonObject) qemu_cap = set_capability(qts, "xbzrle", false);
    g_autoptr(JsonObject) param = qtest_qmp(qts,
        "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
        "{\"downtime-limit\": 500}}");
    g_autofree char *hmp_cap = qtest_hmp(qts, "migrate_set_capability "
                                         "xbzrle off");
    g_autofree char *hmp_param = qtest_hmp(qts, "migrate_set_parameter "
                                           "downtime-limit 500");
    g_autofree char *status = migrate_status(qts);

    /* Still running after the last attempt: it ran during all of them. */
    g_assert_true(!strcmp(status, "setup") || !strcmp(status, "active"));
    g_assert_cmpstr(qtest_reply_error_desc(cap, "GenericError"), ==, busy);
    g_assert_cmpstr(qtest_reply_error_desc(qemu_cap, "GenericError"), ==,
                    busy);
    g_assert_cmpstr(qtest_reply_error_desc(param, "GenericError"), ==, busy);
    g_assert_nonnull(strstr(hmp_cap, busy));
    g_assert_nonnull(strstr(hmp_param, busy));

    migrate_cancel_and_wait(qts);
    g_autoptr(JsonObject) after = set_capability(qts, "events", true);
    g_assert_true(json_object_has_member(after, "return"));
    qtest_quit(qts);
}

/* The "pass" of every MIGRATION_PASS event @qts sent, in order. */
static GArray *pass_events(QTestState *qts)
{
    GArray *passes = g_array_new(FALSE, FALSE, sizeof(int64_t));

    for (;;) {
        g_autoptr(JsonObject) ev = qtest_qmp_eventwait(qts, "MIGRATION_PASS",
                                                       200);
        if (!ev) {
            return passes;
        }
        int64_t pass = json_object_get_int_member(
            json_object_get_object_member(ev, "data"), "pass");
        g_array_append_val(passes, pass);
    }
}

/*
 * MIGRATION_PASS as QEMU sends it, with the 'events' capability on: pass
 * 1 when the RAM save starts, then one after each dirty sync (so pass is
 * dirty-sync-count + 1): a live pre-copy of an idle guest sends 1, 2 (its
 * first pass), ... and the last after the final sync with the guest
 * stopped; a paused guest's stop-and-copy sends 1.  None without
 * 'events'.
 */
static void test_migration_pass_events(void)
{
    for (int events = 0; events <= 1; events++) {
        for (int paused = 0; paused <= 1; paused++) {
            QTestState *qts = start_idle(paused ? "-S" : "");
            g_autofree char *path = g_build_filename(qtest_tmpdir(qts),
                                                     "pass.snap", NULL);
            g_autofree char *uri = g_strdup_printf("file:%s", path);
            g_autoptr(JsonObject) cap = set_capability(qts, "events",
                                                       events);
            g_assert_true(json_object_has_member(cap, "return"));

            migrate_ok(qts, uri);
            wait_migration(qts, "completed");
            g_autoptr(GArray) passes = pass_events(qts);
            g_autoptr(JsonNode) info = qtest_qmp_assert_success(
                qts, "{\"execute\": \"query-migrate\"}");
            int64_t syncs = json_object_get_int_member(
                json_object_get_object_member(json_node_get_object(info),
                                              "ram"), "dirty-sync-count");

            if (!events) {
                g_assert_cmpuint(passes->len, ==, 0);
            } else {
                g_assert_cmpuint(passes->len, ==, syncs + 1);
                /* An idle guest converges after one pass (more if slow). */
                if (paused) {
                    g_assert_cmpuint(passes->len, ==, 1);
                } else {
                    g_assert_cmpuint(passes->len, >=, 3);
                }
                for (guint i = 0; i < passes->len; i++) {
                    g_assert_cmpint(g_array_index(passes, int64_t, i), ==,
                                    i + 1);
                }
            }
            qtest_quit(qts);
        }
    }
}

static JsonObject *add_fd(QTestState *qts, int fd, const char *args)
{
    g_autoptr(JsonObject) reply = qtest_qmp_fds(
        qts, &fd, 1, "{\"execute\": \"add-fd\", \"arguments\": {%s}}",
        args);
    JsonObject *ret;

    g_assert_true(json_object_has_member(reply, "return"));
    ret = json_object_get_object_member(reply, "return");
    g_assert_true(json_object_has_member(ret, "fdset-id"));
    g_assert_cmpint(json_object_get_int_member(ret, "fd"), >=, 0);
    return json_object_ref(ret);
}

static JsonObject *remove_fd(QTestState *qts, int64_t set, int64_t fd)
{
    if (fd < 0) {
        return qtest_qmp(qts, "{\"execute\": \"remove-fd\", \"arguments\": "
                         "{\"fdset-id\": %" PRId64 "}}", set);
    }
    return qtest_qmp(qts, "{\"execute\": \"remove-fd\", \"arguments\": "
                     "{\"fdset-id\": %" PRId64 ", \"fd\": %" PRId64 "}}",
                     set, fd);
}

/*
 * libvirt's way: the file is opened by the client and passed with add-fd;
 * file:/dev/fdset/N saves into it and loads from it.  Then remove-fd and
 * query-fdsets as QEMU answers them.
 */
static void test_fdset_round_trip(void)
{
    QTestState *src = start_idle("-S");
    g_autofree char *path = g_build_filename(qtest_tmpdir(src), "fd.snap",
                                             NULL);
    int wfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rfd = open(path, O_RDONLY | O_CLOEXEC);
    g_autofree char *got = NULL;
    gsize len;

    g_assert_cmpint(wfd, >=, 0);
    g_assert_cmpint(rfd, >=, 0);
    g_autoptr(JsonObject) a1 = add_fd(src, wfd, "\"opaque\": \"save\"");
    g_autoptr(JsonObject) a2 = add_fd(src, rfd, "\"fdset-id\": 0");
    g_assert_cmpint(json_object_get_int_member(a1, "fdset-id"), ==, 0);
    g_assert_cmpint(json_object_get_int_member(a2, "fdset-id"), ==, 0);
    /* Without an id, the lowest free one. */
    g_autoptr(JsonObject) a3 = add_fd(src, rfd, "");
    g_assert_cmpint(json_object_get_int_member(a3, "fdset-id"), ==, 1);

    g_autoptr(JsonNode) sets = qtest_qmp_assert_success(src,
        "{\"execute\": \"query-fdsets\"}");
    JsonArray *list = json_node_get_array(sets);
    g_assert_cmpuint(json_array_get_length(list), ==, 2);
    JsonObject *set0 = json_array_get_object_element(list, 0);
    g_assert_cmpint(json_object_get_int_member(set0, "fdset-id"), ==, 0);
    JsonArray *fds0 = json_object_get_array_member(set0, "fds");
    g_assert_cmpuint(json_array_get_length(fds0), ==, 2);
    int64_t wfd_there = json_object_get_int_member(a1, "fd");
    for (guint i = 0; i < 2; i++) {
        JsonObject *e = json_array_get_object_element(fds0, i);
        bool is_w = json_object_get_int_member(e, "fd") == wfd_there;
        g_assert_cmpstr(json_object_get_string_member_with_default(
                            e, "opaque", NULL), ==, is_w ? "save" : NULL);
    }

    migrate_ok(src, "file:/dev/fdset/0");
    wait_migration(src, "completed");
    g_assert_true(g_file_get_contents(path, &got, &len, NULL));
    g_assert_cmpuint(len, >, 4);
    g_assert_true(memcmp(got, "QEVM", 4) == 0);

    QTestState *dst = start_idle("-S -incoming defer");
    json_object_unref(add_fd(dst, rfd, "\"fdset-id\": 5"));
    json_node_unref(qtest_qmp_assert_success(dst,
        "{\"execute\": \"migrate-incoming\", \"arguments\": "
        "{\"uri\": \"file:/dev/fdset/5\"}}"));
    wait_migration(dst, "completed");
    qtest_quit(dst);

    /* remove-fd: one descriptor, then the set; each once. */
    g_autoptr(JsonObject) r1 = remove_fd(src, 0, wfd_there);
    g_assert_true(json_object_has_member(r1, "return"));
    g_autoptr(JsonObject) r2 = remove_fd(src, 0, wfd_there);
    g_autofree char *want2 = g_strdup_printf(
        "File descriptor named 'fdset-id:0, fd:%" PRId64 "' not found",
        wfd_there);
    g_assert_cmpstr(qtest_reply_error_desc(r2, "GenericError"), ==, want2);
    g_autoptr(JsonObject) r3 = remove_fd(src, 0, -1);
    g_assert_true(json_object_has_member(r3, "return"));
    g_autoptr(JsonObject) r4 = remove_fd(src, 0, -1);
    g_assert_cmpstr(qtest_reply_error_desc(r4, "GenericError"), ==,
                    "File descriptor named 'fdset-id:0' not found");
    g_autoptr(JsonObject) m = NULL;
    g_assert_cmpstr(migrate_error(src, "file:/dev/fdset/0", &m), ==,
                    "File descriptor set 0 has not been found (add-fd)");
    /* A set with only a read-only descriptor cannot take a snapshot. */
    migrate_ok(src, "file:/dev/fdset/1");
    for (gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;;) {
        g_autoptr(JsonNode) info = qtest_qmp_assert_success(
            src, "{\"execute\": \"query-migrate\"}");
        JsonObject *o = json_node_get_object(info);

        if (!strcmp(json_object_get_string_member(o, "status"), "failed")) {
            g_assert_nonnull(strstr(
                json_object_get_string_member(o, "error-desc"),
                "/dev/fdset/1: no descriptor in the set has the access "
                "mode needed"));
            break;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, end);
        g_usleep(20 * 1000);
    }
    qtest_quit(src);
    close(wfd);
    close(rfd);
}

/*
 * file:/dev/fdset/N,offset=N has no temporary name to drop: a cancelled
 * save cuts the file back to where its stream started, and what came
 * before the offset stays.
 */
static void test_fdset_cancel_keeps_head(void)
{
    QTestState *qts = start_idle("-S");
    g_autofree char *path = g_build_filename(qtest_tmpdir(qts), "fd.snap",
                                             NULL);
    int wfd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    guint8 head[2 * OFFSET];
    g_autofree char *got = NULL;
    gsize len;

    memset(head, 0xab, sizeof(head));
    g_assert_cmpint(wfd, >=, 0);
    g_assert_cmpint(write(wfd, head, sizeof(head)), ==, sizeof(head));
    json_object_unref(add_fd(qts, wfd, ""));
    migrate_slowly(qts, "file:/dev/fdset/0,offset=4096");
    for (gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;;) {
        struct stat st;

        g_assert_cmpint(fstat(wfd, &st), ==, 0);
        if (st.st_size > OFFSET) {
            break;      /* the stream has begun */
        }
        g_assert_cmpint(g_get_monotonic_time(), <, end);
        g_usleep(10 * 1000);
    }
    migrate_cancel_and_wait(qts);
    g_assert_true(g_file_get_contents(path, &got, &len, NULL));
    g_assert_cmpuint(len, ==, OFFSET);
    g_assert_true(memcmp(got, head, OFFSET) == 0);
    qtest_quit(qts);
    close(wfd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration-uri/file/offset-round-trip",
                    test_file_offset_round_trip);
    g_test_add_func("/migration-uri/file/other-options-refused",
                    test_file_options_refused);
    g_test_add_func("/migration-uri/file/img-name-with-comma",
                    test_img_file_name_with_comma);
    g_test_add_func("/migration-uri/capabilities/qemu-off-ok-on-refused",
                    test_qemu_capabilities_off_ok_on_refused);
    g_test_add_func("/migration-uri/options/locked-while-migrating",
                    test_options_locked_while_migrating);
    g_test_add_func("/migration-uri/fdset/add-save-load-remove",
                    test_fdset_round_trip);
    g_test_add_func("/migration-uri/fdset/cancel-keeps-head",
                    test_fdset_cancel_keeps_head);
    g_test_add_func("/migration-uri/events/migration-pass",
                    test_migration_pass_events);
    return g_test_run();
}
