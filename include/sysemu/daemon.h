/*
 * -pidfile and -daemonize (system/daemon.c).
 */
#ifndef SYSEMU_DAEMON_H
#define SYSEMU_DAEMON_H

#include "qemu/osdep.h"
#include "qapi/error.h"

/*
 * Write our pid to @path, held with an exclusive lock for the life of the
 * process (a second snapvm with the same file is refused).
 */
bool pidfile_create(const char *path, Error **errp);
/* Remove the file pidfile_create() wrote, if any. */
void pidfile_remove(void);

/*
 * Fork: the parent waits (it never returns) and exits 0 once the child
 * calls daemonize_done(), or with the child's status if the child ends
 * first.  The child, which returns true, leaves the terminal's session.
 * Call before any thread exists.
 */
bool daemonize_start(Error **errp);
/* In the child, when ready: stdio to /dev/null, the parent released. */
void daemonize_done(void);

#endif
