/*
 * What the monitor's own files share: the Monitor object (one per client
 * session, or a capture buffer for human-monitor-command) and the entry
 * points of QMP and HMP sessions.  Everything here runs in the main thread.
 */
#ifndef MONITOR_INTERNAL_H
#define MONITOR_INTERNAL_H

#include "monitor/monitor.h"
#include "monitor/json-stream.h"

/* A client whose unsent output grows past this is dropped. */
#define MONITOR_MAX_OUTBUF (16 * MiB)
/* An HMP line longer than this is refused. */
#define HMP_MAX_LINE (64 * KiB)
/*
 * Connections beyond this per listening socket get one error message and
 * are closed.
 */
#define MONITOR_MAX_CLIENTS 64
/*
 * SCM_RIGHTS descriptors a QMP session holds for getfd at most; beyond
 * this the oldest are closed, so a client cannot make us hoard descriptors.
 */
#define MONITOR_MAX_PASSED_FDS 16

#define HMP_PROMPT "(snapvm) "

typedef enum MonitorKind {
    MONITOR_QMP,
    MONITOR_HMP,
} MonitorKind;

typedef struct MonitorListener MonitorListener;

struct Monitor {
    MonitorKind kind;
    MachineState *ms;
    int cpu_index;              /* the CPU HMP commands look at */

    /*
     * Transport: -1 for a capture monitor, whose output only accumulates
     * in @outbuf.  For stdio, in_fd and out_fd differ.
     */
    int in_fd;
    int out_fd;
    bool out_nonblocking;       /* sockets: buffer instead of blocking */
    guint in_watch;
    guint out_watch;
    guint reap_idle;
    GByteArray *outbuf;
    MonitorListener *listener;  /* NULL for stdio and capture */
    /* Input or output failed: ignore the client until it is reaped. */
    bool dead;

    /* QMP */
    JsonStream *stream;
    bool negotiated;
    /*
     * Descriptors received with SCM_RIGHTS on a unix socket session, oldest
     * first, until getfd takes them (monitor_take_passed_fd()).  NULL for
     * stdio and capture monitors.
     */
    GArray *passed_fds;
    /* How many getfd has taken so far: tells a read that claimed one. */
    unsigned passed_fds_taken;

    /* HMP */
    GString *line;
    bool line_overflow;         /* discarding up to the next newline */
};

/* monitor.c */
void monitor_write(Monitor *mon, const char *buf, size_t len);
/* Drop the client after the current callback: no more input or output. */
void monitor_mark_dead(Monitor *mon);
/* The monitor whose command is running now (NULL outside dispatch). */
Monitor *monitor_cur(void);
Monitor *monitor_set_cur(Monitor *mon);
/* Call @fn for every QMP session past negotiation. */
void monitor_foreach_qmp_ready(void (*fn)(Monitor *mon, void *opaque),
                               void *opaque);

/* qmp.c */
void qmp_session_start(Monitor *mon);
void qmp_session_input(Monitor *mon, const char *buf, size_t len);
void qmp_session_end(Monitor *mon);
/* Write one message, followed by "\r\n". */
void qmp_send_node(Monitor *mon, JsonNode *node);
/* Registered command names in registration order. */
GPtrArray *qmp_command_names(void);

/* hmp.c */
void hmp_session_start(Monitor *mon);
void hmp_session_input(Monitor *mon, const char *buf, size_t len);
void hmp_session_end(Monitor *mon);
/* Run one command line, printing to @mon (no prompt). */
void hmp_run_line(Monitor *mon, const char *line);
/* A monitor that only collects output, for human-monitor-command. */
Monitor *monitor_new_capture(MachineState *ms, int cpu_index);
/* Free a capture monitor and return what was printed to it. */
char *monitor_free_capture(Monitor *mon);

/* events.c */
void monitor_events_init(void);

#endif
