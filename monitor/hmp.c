/*
 * HMP: the human monitor.  Lines are split into words (white space, with
 * "double quotes" grouping a word that contains spaces) and handed to the
 * registered command; "help" and "info" are the monitor's own.
 */
#include "qemu/osdep.h"
#include "monitor-internal.h"

typedef struct HmpCommand {
    char *name;         /* "cont|c": the first name, then aliases */
    char *params;
    char *help;
    HmpCommandFunc fn;
    void *opaque;
} HmpCommand;

/* Process-wide tables, in registration order. */
static GPtrArray *hmp_commands;
static GPtrArray *hmp_info_commands;

static HmpCommand *hmp_command_new(const char *name, const char *params,
                                   const char *help, HmpCommandFunc fn,
                                   void *opaque)
{
    HmpCommand *cmd = g_new0(HmpCommand, 1);

    cmd->name = g_strdup(name);
    cmd->params = g_strdup(params ? params : "");
    cmd->help = g_strdup(help ? help : "");
    cmd->fn = fn;
    cmd->opaque = opaque;
    return cmd;
}

static bool hmp_name_matches(const HmpCommand *cmd, const char *name)
{
    g_auto(GStrv) aliases = g_strsplit(cmd->name, "|", -1);

    return g_strv_contains((const char *const *)aliases, name);
}

static HmpCommand *hmp_find(GPtrArray *table, const char *name)
{
    for (guint i = 0; table && i < table->len; i++) {
        HmpCommand *cmd = g_ptr_array_index(table, i);
        if (hmp_name_matches(cmd, name)) {
            return cmd;
        }
    }
    return NULL;
}

static void hmp_register_builtins(void);

void hmp_register_command(const char *name, const char *params,
                          const char *help, HmpCommandFunc fn, void *opaque)
{
    hmp_register_builtins();
    g_assert(!hmp_find(hmp_commands, name));
    g_ptr_array_add(hmp_commands,
                    hmp_command_new(name, params, help, fn, opaque));
}

void hmp_register_info(const char *name, const char *help,
                       HmpCommandFunc fn, void *opaque)
{
    hmp_register_builtins();
    g_assert(!hmp_find(hmp_info_commands, name));
    g_ptr_array_add(hmp_info_commands,
                    hmp_command_new(name, "", help, fn, opaque));
}

/* ---- output ---- */

/*
 * Every byte HMP prints goes through here.  As QEMU's monitor_puts() does,
 * a newline leaves as "\r\n": on a socket, on stdio and in the string
 * human-monitor-command returns (qmp-shell's HMP mode splits on it).
 */
static void hmp_puts(Monitor *mon, const char *text)
{
    g_autoptr(GString) out = g_string_sized_new(strlen(text) + 16);

    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            g_string_append_c(out, '\r');
        }
        g_string_append_c(out, *p);
    }
    monitor_write(mon, out->str, out->len);
}

void monitor_printf(Monitor *mon, const char *fmt, ...)
{
    g_autofree char *text = NULL;
    va_list ap;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    hmp_puts(mon, text);
}

void hmp_handle_error(Monitor *mon, Error *err)
{
    if (err) {
        monitor_printf(mon, "Error: %s\n", error_get_pretty(err));
        error_free(err);
    }
}

/* ---- help and info ---- */

static void hmp_help_one(Monitor *mon, const char *prefix,
                         const HmpCommand *cmd)
{
    monitor_printf(mon, "%s%s %s -- %s\n", prefix, cmd->name, cmd->params,
                   cmd->help);
}

static void hmp_help_table(Monitor *mon, const char *prefix, GPtrArray *table)
{
    for (guint i = 0; i < table->len; i++) {
        hmp_help_one(mon, prefix, g_ptr_array_index(table, i));
    }
}

static void hmp_help(Monitor *mon, int argc, char **argv, void *opaque)
{
    HmpCommand *cmd;

    if (argc < 2) {
        hmp_help_table(mon, "", hmp_commands);
        hmp_help_table(mon, "info ", hmp_info_commands);
        return;
    }
    if (!strcmp(argv[1], "info")) {
        if (argc > 2) {
            cmd = hmp_find(hmp_info_commands, argv[2]);
            if (cmd) {
                hmp_help_one(mon, "info ", cmd);
            } else {
                monitor_printf(mon, "unknown command: 'info %s'\n", argv[2]);
            }
            return;
        }
        hmp_help_table(mon, "info ", hmp_info_commands);
        return;
    }
    cmd = hmp_find(hmp_commands, argv[1]);
    if (cmd) {
        hmp_help_one(mon, "", cmd);
    } else {
        monitor_printf(mon, "unknown command: '%s'\n", argv[1]);
    }
}

static void hmp_info(Monitor *mon, int argc, char **argv, void *opaque)
{
    HmpCommand *cmd;

    if (argc < 2) {
        hmp_help_table(mon, "info ", hmp_info_commands);
        return;
    }
    cmd = hmp_find(hmp_info_commands, argv[1]);
    if (!cmd) {
        monitor_printf(mon, "unknown command: 'info %s'\n", argv[1]);
        return;
    }
    cmd->fn(mon, argc, argv, cmd->opaque);
}

static void hmp_register_builtins(void)
{
    if (hmp_commands) {
        return;
    }
    hmp_commands = g_ptr_array_new();
    hmp_info_commands = g_ptr_array_new();
    g_ptr_array_add(hmp_commands,
                    hmp_command_new("help|?", "[cmd]",
                                    "show the help", hmp_help, NULL));
    g_ptr_array_add(hmp_commands,
                    hmp_command_new("info", "[subcommand]",
                                    "show various information about the"
                                    " system state", hmp_info, NULL));
}

/* ---- lines ---- */

/*
 * Split @line into words; a word in double quotes may hold spaces and
 * backslash escapes.  NULL (with @errp set) on an unterminated quote.
 */
static GStrv hmp_split_words(const char *line, Error **errp)
{
    g_autoptr(GPtrArray) words = g_ptr_array_new_with_free_func(g_free);
    const char *p = line;

    for (;;) {
        g_autoptr(GString) word = g_string_new(NULL);

        while (g_ascii_isspace(*p)) {
            p++;
        }
        if (!*p) {
            break;
        }
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) {
                    p++;
                }
                g_string_append_c(word, *p++);
            }
            if (*p != '"') {
                error_setg(errp, "unterminated string literal");
                return NULL;
            }
            p++;
        } else {
            while (*p && !g_ascii_isspace(*p)) {
                g_string_append_c(word, *p++);
            }
        }
        g_ptr_array_add(words, g_string_free(g_steal_pointer(&word), FALSE));
    }
    g_ptr_array_add(words, NULL);
    return (GStrv)g_ptr_array_free(g_steal_pointer(&words), FALSE);
}

void hmp_run_line(Monitor *mon, const char *line)
{
    Error *err = NULL;
    g_auto(GStrv) argv = hmp_split_words(line, &err);
    HmpCommand *cmd;
    Monitor *old;

    hmp_register_builtins();
    if (!argv) {
        hmp_handle_error(mon, err);
        return;
    }
    if (!argv[0]) {
        return;
    }
    cmd = hmp_find(hmp_commands, argv[0]);
    if (!cmd) {
        monitor_printf(mon, "unknown command: '%s'\n", argv[0]);
        return;
    }
    old = monitor_set_cur(mon);
    cmd->fn(mon, g_strv_length(argv), argv, cmd->opaque);
    monitor_set_cur(old);
}

void hmp_session_start(Monitor *mon)
{
    mon->line = g_string_new(NULL);
    monitor_printf(mon, "snapvm %s monitor - type 'help' for more"
                   " information\n" HMP_PROMPT, SNAPVM_VERSION);
}

void hmp_session_input(Monitor *mon, const char *buf, size_t len)
{
    for (size_t i = 0; i < len && !mon->dead; i++) {
        if (buf[i] != '\n') {
            if (mon->line_overflow) {
                continue;
            }
            if (mon->line->len >= HMP_MAX_LINE) {
                mon->line_overflow = true;
                g_string_truncate(mon->line, 0);
                continue;
            }
            g_string_append_c(mon->line, buf[i]);
            continue;
        }
        if (mon->line_overflow) {
            mon->line_overflow = false;
            monitor_printf(mon, "Error: line too long (limit %" PRId64
                           " bytes)\n", (int64_t)HMP_MAX_LINE);
        } else {
            g_autofree char *line = g_strndup(mon->line->str, mon->line->len);

            g_string_truncate(mon->line, 0);
            g_strchomp(line);   /* also drops a telnet-style "\r" */
            hmp_run_line(mon, line);
        }
        monitor_printf(mon, HMP_PROMPT);
    }
}

void hmp_session_end(Monitor *mon)
{
    if (mon->line) {
        g_string_free(mon->line, TRUE);
        mon->line = NULL;
    }
}
