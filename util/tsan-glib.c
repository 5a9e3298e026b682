/*
 * ThreadSanitizer build only (-Db_sanitize=thread): tell TSan about
 * GLib's locks.
 *
 * GLib on Linux implements GMutex and GCond with its own atomics and the
 * futex system call.  libglib is not instrumented and TSan does not look
 * at futex, so without help every access guarded by a GMutex would be
 * reported as a race.  This file defines g_mutex_lock() and friends in
 * the executable; the dynamic linker binds our calls (and those of
 * json-glib and gio) to these definitions, which call GLib's own through
 * dlsym(RTLD_NEXT) and report each lock and unlock with TSan's mutex
 * annotations.  GLib's calls inside libglib are bound within the library
 * (-Bsymbolic-functions) and do not come here; g_cond_wait() unlocks and
 * relocks its mutex that way, so the wrappers below say so themselves.
 *
 * A hand-over through the main loop (g_idle_add() from another thread) is
 * ordered by GLib's internal context lock, which TSan cannot see either:
 * the idle wrappers release a per-source token before the source is added
 * and acquire it before the callback runs.  The source itself is
 * allocated by the adding thread inside GLib and freed by the main
 * thread after dispatch, also under that lock: TSan is told to ignore
 * what the adding thread does inside g_idle_add_full() (only GLib's code
 * runs there, none of ours).
 *
 * Nothing here changes what the program does; it only annotates.
 */
#include <dlfcn.h>
#include <glib.h>
#include <sanitizer/tsan_interface.h>
#include <stdio.h>
#include <stdlib.h>

/* The next definition of NAME after ours, found once. */
static void *real_symbol(void **cache, const char *name)
{
    void *fn = __atomic_load_n(cache, __ATOMIC_ACQUIRE);

    if (!fn) {
        fn = dlsym(RTLD_NEXT, name);
        if (!fn) {
            fprintf(stderr, "tsan-glib: %s not found: %s\n", name, dlerror());
            abort();
        }
        __atomic_store_n(cache, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

#define REAL(ret, name, params)                                             \
    static ret (*real_##name) params;                                       \
    static ret (*get_##name(void)) params                                   \
    {                                                                       \
        return real_symbol((void **)&real_##name, #name);                   \
    }

/* TSan's dynamic annotations (libtsan exports them; no header has them). */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);

REAL(void, g_mutex_init, (GMutex *))
REAL(void, g_mutex_clear, (GMutex *))
REAL(void, g_mutex_lock, (GMutex *))
REAL(gboolean, g_mutex_trylock, (GMutex *))
REAL(void, g_mutex_unlock, (GMutex *))
REAL(void, g_cond_wait, (GCond *, GMutex *))
REAL(gboolean, g_cond_wait_until, (GCond *, GMutex *, gint64))
REAL(guint, g_idle_add_full, (gint, GSourceFunc, gpointer, GDestroyNotify))

void g_mutex_init(GMutex *mutex)
{
    get_g_mutex_init()(mutex);
    __tsan_mutex_create(mutex, __tsan_mutex_not_static);
}

void g_mutex_clear(GMutex *mutex)
{
    __tsan_mutex_destroy(mutex, 0);
    get_g_mutex_clear()(mutex);
}

void g_mutex_lock(GMutex *mutex)
{
    __tsan_mutex_pre_lock(mutex, 0);
    get_g_mutex_lock()(mutex);
    __tsan_mutex_post_lock(mutex, 0, 0);
}

gboolean g_mutex_trylock(GMutex *mutex)
{
    gboolean locked;

    __tsan_mutex_pre_lock(mutex, __tsan_mutex_try_lock);
    locked = get_g_mutex_trylock()(mutex);
    __tsan_mutex_post_lock(mutex, __tsan_mutex_try_lock |
                           (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
    return locked;
}

void g_mutex_unlock(GMutex *mutex)
{
    __tsan_mutex_pre_unlock(mutex, 0);
    get_g_mutex_unlock()(mutex);
    __tsan_mutex_post_unlock(mutex, 0);
}

/* GLib unlocks and relocks @mutex inside, out of our sight. */
void g_cond_wait(GCond *cond, GMutex *mutex)
{
    __tsan_mutex_pre_unlock(mutex, 0);
    __tsan_mutex_post_unlock(mutex, 0);
    get_g_cond_wait()(cond, mutex);
    __tsan_mutex_pre_lock(mutex, 0);
    __tsan_mutex_post_lock(mutex, 0, 0);
}

gboolean g_cond_wait_until(GCond *cond, GMutex *mutex, gint64 end_time)
{
    gboolean signalled;

    __tsan_mutex_pre_unlock(mutex, 0);
    __tsan_mutex_post_unlock(mutex, 0);
    signalled = get_g_cond_wait_until()(cond, mutex, end_time);
    __tsan_mutex_pre_lock(mutex, 0);
    __tsan_mutex_post_lock(mutex, 0, 0);
    return signalled;
}

/* An idle callback with a token that orders its adder before it. */
typedef struct {
    GSourceFunc func;
    gpointer data;
    GDestroyNotify notify;
} IdleToken;

static gboolean idle_token_dispatch(gpointer opaque)
{
    IdleToken *t = opaque;

    __tsan_acquire(t);
    return t->func(t->data);
}

static void idle_token_free(gpointer opaque)
{
    IdleToken *t = opaque;

    __tsan_acquire(t);
    if (t->notify) {
        t->notify(t->data);
    }
    g_free(t);
}

guint g_idle_add_full(gint priority, GSourceFunc func, gpointer data,
                      GDestroyNotify notify)
{
    IdleToken *t = g_new(IdleToken, 1);
    guint id;

    t->func = func;
    t->data = data;
    t->notify = notify;
    __tsan_release(t);
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
    id = get_g_idle_add_full()(priority, idle_token_dispatch, t,
                               idle_token_free);
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
    return id;
}

guint g_idle_add(GSourceFunc func, gpointer data)
{
    return g_idle_add_full(G_PRIORITY_DEFAULT_IDLE, func, data, NULL);
}
