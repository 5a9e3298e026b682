/*
 * libqtest: start the real snapvm binary and drive it over QMP.
 *
 * A QTestState is one QMP connection.  The one qtest_init() returns also
 * owns the snapvm process: qtest_quit() on it ends the process.  Further
 * connections to the same process come from qtest_client_new() and only
 * close their socket on qtest_quit().
 *
 * Failures of the harness itself (snapvm does not start, no reply within
 * the timeout, a reply that is not JSON) abort the test with g_error():
 * tests assert on what snapvm answers, not on whether it answers.
 *
 * Replies are JsonObject (json-glib); free them with json_object_unref()
 * or declare them g_autoptr(JsonObject).
 */
#ifndef LIBQTEST_H
#define LIBQTEST_H

#include <stdbool.h>
#include <sys/types.h>
#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct QTestState QTestState;

/* How long a reply or an event may take before the harness gives up. */
#define QTEST_DEFAULT_TIMEOUT_MS 60000

/*
 * Start snapvm with "-qmp unix:<tmpdir>/qmp.sock,server=on,wait=off
 * -serial file:<tmpdir>/serial.log" followed by @extra_args (split like a
 * shell would, quotes allowed), wait for the socket, read the greeting and
 * negotiate capabilities.  The binary is $SNAPVM_BINARY, else ./snapvm.
 */
QTestState *qtest_init(const char *extra_args);
QTestState *qtest_initf(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/*
 * qtest_init() with @env ("NAME=VALUE" strings, NULL-terminated; NULL for
 * none) set in snapvm's environment over the test's own, e.g. the
 * test-only switch SNAPVM_TEST_UFFD_HIDE_FEATURES.
 */
QTestState *qtest_init_env(const char *const *env, const char *extra_args);

/*
 * Send "quit" (owner) and wait for the process; SIGKILL it if it has not
 * ended within a few seconds.  On a client from qtest_client_new(), only
 * close the connection.  Frees @qts.
 */
void qtest_quit(QTestState *qts);

/*
 * Wait for snapvm to end by itself (e.g. the guest wrote to the debug-exit
 * port) and free @qts.  Returns the exit status (0..255), 128 + signal if
 * it was killed by a signal, or -1 if it did not end within @timeout_ms
 * (it is then killed).
 */
int qtest_wait_exit(QTestState *qts, int timeout_ms);

/* ---- more connections to the same process ---- */

/*
 * Open another QMP connection to @owner's socket.  Its greeting is read;
 * capabilities are negotiated if @negotiate.
 */
QTestState *qtest_client_new(QTestState *owner, bool negotiate);
/* The greeting this connection received (owned by @qts). */
JsonObject *qtest_greeting(QTestState *qts);

/* ---- QMP ---- */

/*
 * Send one command (printf-style JSON text, e.g.
 * "{'execute': 'stop'}" written with double quotes) and return the reply:
 * the object holding "return" or "error".  Events met on the way are kept
 * for qtest_qmp_eventwait().
 */
JsonObject *qtest_qmp(QTestState *qts, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
/* Send without waiting; pair with qtest_qmp_receive(). */
void qtest_qmp_send(QTestState *qts, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Send bytes as they are (bad input, partial messages). */
void qtest_qmp_send_raw(QTestState *qts, const char *buf, size_t len);
/*
 * Descriptor passing, as libvirt does it for getfd: @fds (at most
 * QTEST_MAX_FDS; the caller keeps its own copies) travel with SCM_RIGHTS
 * in the same sendmsg() as the first bytes of the text.
 */
#define QTEST_MAX_FDS 32
JsonObject *qtest_qmp_fds(QTestState *qts, const int *fds, size_t nfds,
                          const char *fmt, ...) G_GNUC_PRINTF(4, 5);
/* Send bytes as they are with @fds attached; pair with qtest_qmp_receive(). */
void qtest_qmp_send_raw_fds(QTestState *qts, const int *fds, size_t nfds,
                            const char *buf, size_t len);
/* The next message that is not an event. */
JsonObject *qtest_qmp_receive(QTestState *qts);
/*
 * Like qtest_qmp_receive() but NULL if nothing came within @timeout_ms or
 * the server closed the connection (see qtest_connection_closed()).
 */
JsonObject *qtest_qmp_receive_timeout(QTestState *qts, int timeout_ms);
/* Whether snapvm has closed this connection. */
bool qtest_connection_closed(QTestState *qts);
/* @str as a JSON string literal, quotes included (caller frees). */
char *qtest_json_quote(const char *str);

/*
 * Send a command, assert that it succeeded and return its "return" member
 * (a new reference; never NULL).
 */
JsonNode *qtest_qmp_assert_success(QTestState *qts, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

/* Assert that @reply is an error of class @cls; returns its "desc". */
const char *qtest_reply_error_desc(JsonObject *reply, const char *cls);

/*
 * Wait for event @name (already buffered, or arriving within @timeout_ms)
 * and return it, removed from the buffer; NULL on timeout.
 */
JsonObject *qtest_qmp_eventwait(QTestState *qts, const char *name,
                                int timeout_ms);
/* Drop every buffered event. */
void qtest_qmp_discard_events(QTestState *qts);

/* "status" of query-status, e.g. "running" (caller frees). */
char *qtest_query_status(QTestState *qts);

/* ---- HMP through human-monitor-command ---- */

/* The output of one HMP command line (caller frees). */
char *qtest_hmp(QTestState *qts, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* ---- the process and its files ---- */

pid_t qtest_pid(QTestState *qts);
/* The per-test directory (removed by qtest_quit() of the owner). */
const char *qtest_tmpdir(QTestState *qts);
const char *qtest_qmp_socket_path(QTestState *qts);
/* A new connection to the Unix socket at @path, or -1 (errno set). */
int qtest_connect_unix(const char *path);
const char *qtest_serial_path(QTestState *qts);
/*
 * How many descriptors the snapvm process has open now (from
 * /proc/PID/fd), to check that nothing leaks.
 */
int qtest_open_fd_count(QTestState *qts);
/* Bytes the guest has written to its serial port so far. */
gsize qtest_serial_size(QTestState *qts);
/* The whole serial log so far (caller frees; "" if none). */
char *qtest_serial_read(QTestState *qts);
/* Wait until the serial log contains @needle; false on timeout. */
bool qtest_serial_wait(QTestState *qts, const char *needle, int timeout_ms);

/* ---- running snapvm without a QMP connection ---- */

/*
 * Run snapvm with @args (split like a shell would), no input, and return
 * its exit status (as qtest_wait_exit()).  What it printed is returned in
 * @out / @err when not NULL (caller frees).
 */
int qtest_run(const char *args, int timeout_ms, char **out, char **err);
/* Same, with @input (at most 4 KiB) on its standard input, then EOF. */
int qtest_run_with_input(const char *args, const char *input, int timeout_ms,
                         char **out, char **err);

/* ---- paths ---- */

/* The snapvm binary: $SNAPVM_BINARY, else "./snapvm". */
const char *qtest_binary(void);
/*
 * A guest program: $SNAPVM_GUEST_DIR/NAME.elf (".elf" added when @name has
 * no dot), else tests/guest/NAME.elf relative to the current directory.
 * Caller frees.  A missing guest fails the test: the build makes them all,
 * so a missing one is a fault, and skipping would shrink the suite.
 */
char *qtest_guest_path(const char *name);
/* Whether the guest program is there (without failing the test). */
bool qtest_guest_exists(const char *name);

#endif
