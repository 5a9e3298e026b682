/*
 * The QAPI schema at run time (monitor/qmp-schema.c): what
 * query-qmp-schema returns, and checks of hand-written tables against it.
 */
#ifndef MONITOR_QMP_SCHEMA_H
#define MONITOR_QMP_SCHEMA_H

#include "monitor/monitor.h"
#include "qemu/cutils.h"

/* query-qmp-schema's answer: a list of QEMU's SchemaInfo objects. */
JsonNode *qmp_schema_to_node(void);
/* The values of enum @name, in declaration order; NULL if none. */
GStrv qmp_schema_enum_values(const char *name);
/* @args (as registered) name, type and optionality the schema's args. */
bool qmp_schema_check_args(const char *command, const QmpArgSpec *args,
                           Error **errp);
/* @lookup's names are its enum's values in the schema, in any order. */
bool qmp_schema_check_enum(const QEnumLookup *lookup, Error **errp);

/*
 * Every registered QMP command's argument table against the schema
 * (monitor/qmp.c); the build fails on a difference (qapi-schema-check).
 */
bool qmp_commands_check_schema(Error **errp);

#endif
