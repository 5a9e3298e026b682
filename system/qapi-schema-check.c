/*
 * qapi-schema-check: run at build time (meson.build), after snapvm's
 * library is linked.  It registers every QMP command as start-up does and
 * checks the argument tables and the C enum name tables against the
 * qapi/ schema compiled in (scripts/qapi-introspect.py).  A difference
 * is printed and fails the build, so no binary that disagrees with its
 * own schema is ever produced.  @argv[1], the stamp file, is written
 * only when everything agrees.
 */
#include "qemu/osdep.h"
#include "sysemu/commands.h"

int main(int argc, char **argv)
{
    Error *err = NULL;

    if (argc != 2) {
        fprintf(stderr, "usage: %s STAMP\n", argv[0]);
        return 2;
    }
    /* Registered, never dispatched: the commands need no machine. */
    snapvm_register_commands(NULL, NULL);
    if (!snapvm_check_schema(&err)) {
        error_prepend(&err, "the C tables disagree with qapi/*.json: ");
        error_report_err(err);
        return 1;
    }
    if (!g_file_set_contents(argv[1], "ok\n", -1, NULL)) {
        fprintf(stderr, "%s: cannot write %s\n", argv[0], argv[1]);
        return 1;
    }
    return 0;
}
