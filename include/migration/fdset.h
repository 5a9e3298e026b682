/*
 * File descriptor sets for add-fd / remove-fd / query-fdsets and
 * "file:/dev/fdset/N" migration URIs (migration/fdset.c).  Thread safe:
 * the monitor adds and removes, the migration thread duplicates.
 */
#ifndef MIGRATION_FDSET_H
#define MIGRATION_FDSET_H

#include "qemu/osdep.h"
#include "qapi/error.h"

typedef struct MigFdSets MigFdSets;

MigFdSets *mig_fdsets_new(void);
/* Closes every descriptor still in a set. */
void mig_fdsets_free(MigFdSets *sets);

/*
 * Put @fd (owned from now on) into set @set_id, or into the lowest free
 * set id without @has_set_id.  Returns the set id, or -1 with @errp set
 * (and @fd not taken).
 */
int64_t mig_fdsets_add(MigFdSets *sets, bool has_set_id, int64_t set_id,
                       const char *opaque, int fd, Error **errp);
bool mig_fdsets_has(MigFdSets *sets, int64_t set_id);
/* Close and forget descriptor @fd of set @set_id, or the whole set. */
bool mig_fdsets_remove(MigFdSets *sets, int64_t set_id, bool has_fd,
                       int64_t fd, Error **errp);

typedef void (*MigFdSetsFunc)(int64_t set_id, int fd, const char *opaque,
                              void *data);
/* In order of set id, then descriptor. */
void mig_fdsets_foreach(MigFdSets *sets, MigFdSetsFunc fn, void *data);

/* Whether @path is "/dev/fdset/N", and N. */
bool mig_fdset_path_id(const char *path, int64_t *set_id);
/*
 * A new descriptor (close-on-exec, the caller's) duplicating one of set
 * @set_id opened with access mode @accmode (O_RDONLY, O_WRONLY), or
 * else one opened O_RDWR; -1 with @errp set if there is none.
 */
int mig_fdsets_dup(MigFdSets *sets, int64_t set_id, int accmode,
                   Error **errp);

#endif
