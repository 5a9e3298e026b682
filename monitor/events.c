/*
 * QMP events.  qapi_event_send() may run on any thread (vCPU, migration),
 * while sessions belong to the main loop: the event is serialised on the
 * caller's thread, queued, and written out by the main thread, either at
 * once (when the caller is the main thread) or from an idle callback that
 * wakes the default main context.  One queue keeps events in the order
 * they were sent, whichever thread sent them.
 */
#include "qemu/osdep.h"
#include "monitor-internal.h"

static GMutex event_lock;
static GQueue event_queue;          /* char *, JSON text; under event_lock */
static bool event_flush_scheduled;  /* under event_lock */
static GThread *main_thread;

void monitor_events_init(void)
{
    if (!main_thread) {
        main_thread = g_thread_self();
    }
}

static void event_write(Monitor *mon, void *opaque)
{
    const char *text = opaque;

    monitor_write(mon, text, strlen(text));
}

static void events_flush(void)
{
    GQueue pending = G_QUEUE_INIT;
    char *text;

    g_mutex_lock(&event_lock);
    pending = event_queue;
    g_queue_init(&event_queue);
    event_flush_scheduled = false;
    g_mutex_unlock(&event_lock);

    while ((text = g_queue_pop_head(&pending))) {
        monitor_foreach_qmp_ready(event_write, text);
        g_free(text);
    }
}

static gboolean events_flush_idle(gpointer unused)
{
    events_flush();
    return G_SOURCE_REMOVE;
}

void qapi_event_send(const char *event, JsonObject *data)
{
    g_autoptr(JsonObject) msg = json_object_new();
    g_autoptr(JsonNode) node = NULL;
    JsonObject *timestamp = json_object_new();
    gint64 now = g_get_real_time();
    bool on_main = main_thread && g_thread_self() == main_thread;
    bool schedule = false;
    char *text;

    /* QEMU's member order: timestamp, event, data (absent when empty). */
    json_object_set_int_member(timestamp, "seconds", now / G_USEC_PER_SEC);
    json_object_set_int_member(timestamp, "microseconds",
                               now % G_USEC_PER_SEC);
    json_object_set_object_member(msg, "timestamp", timestamp);
    json_object_set_string_member(msg, "event", event);
    if (data) {
        json_object_set_object_member(msg, "data", data);
    }
    node = json_node_init_object(json_node_alloc(), msg);
    {
        g_autofree char *json = json_to_string(node, FALSE);
        /* The message and its "\r\n" go out in one write. */
        text = g_strconcat(json, "\r\n", NULL);
    }

    g_mutex_lock(&event_lock);
    g_queue_push_tail(&event_queue, text);
    if (!on_main && !event_flush_scheduled) {
        event_flush_scheduled = true;
        schedule = true;
    }
    g_mutex_unlock(&event_lock);

    if (on_main) {
        events_flush();
    } else if (schedule) {
        g_idle_add_full(G_PRIORITY_DEFAULT, events_flush_idle, NULL, NULL);
    }
}
