/*
 * What the command line's files share (system/vl.c, system/vl-compat.c):
 * QEMU's key=value syntax and the options that management tools pass.
 */
#ifndef SYSTEM_VL_INTERNAL_H
#define SYSTEM_VL_INTERNAL_H

#include "sysemu/cmdline.h"

/*
 * Split "a=1,b=2" into a table.  @implied_key names a first element
 * without '=' (QEMU's "-m 1G" is "-m size=1G").
 */
GHashTable *parse_keyval(const char *opt, const char *value,
                         const char *implied_key, Error **errp);
/* Refuse keys other than @allowed (NULL-terminated). */
bool check_keys(GHashTable *kv, const char *opt,
                const char *const *allowed, Error **errp);
/* A copy of @s that lives as long as @opts. */
const char *own(SnapvmOptions *opts, const char *s);
/* on/off, yes/no, true/false. */
bool parse_bool_value(const char *opt, const char *key,
                      const char *val, bool *out, Error **errp);

/* Options without a value that vl-compat.c takes; NULL-terminated. */
extern const char *const compat_flags[];
/* Options with a value that vl-compat.c takes; NULL-terminated. */
extern const char *const compat_options_with_value[];
/*
 * One of them (@value NULL for a flag).  CMDLINE_EXIT for "-machine
 * help", which printed the list.
 */
CmdlineResult compat_parse_option(SnapvmOptions *opts, const char *opt,
                                  const char *value, Error **errp);
void compat_options_init(SnapvmOptions *opts);
/* After the whole command line: -mon to -chardev, -nographic, checks. */
bool compat_resolve(SnapvmOptions *opts, Error **errp);
void compat_options_clear(SnapvmOptions *opts);

#endif
