/*
 * snapguest: a self-checking workload for a Linux guest.
 *
 * It runs as the guest's init program (started by tests/linux-guest/init)
 * and keeps a buffer of most of the guest's RAM in a state it can check.
 * Every 4 KiB page has a generation number, kept in an array of our own;
 * each of the page's 64 cache lines holds a stamp made of that generation,
 * the page's index and the line's index.  Before the workload changes a
 * page it checks that every line holds the stamp the array says, then
 * writes the next generation's stamps and bumps the array.
 *
 * A snapshot taken at one instant holds the array, the pages and the
 * program's registers as they were at that instant, so after a restore the
 * check goes on passing.  A page saved from another instant (before or
 * after it was last written), a page at the wrong offset or a torn page
 * fails the check within one pass, and the first bad page is printed.
 *
 * Modes:
 *   sweep  writes every page, in order, pass after pass (like a-b-sweep);
 *   hot    writes a small hot set over and over and checks the rest of the
 *          buffer, which is never written again, a slice per round;
 *   read   checks every page each pass and writes one in 64.
 *
 * The host reads progress from a counter block whose guest-physical
 * address is printed at start (see struct counters), and from the console:
 *   snapguest: ready mode=sweep mib=768 pages=196608 counters=0x...
 *   snapguest: sweep pass 3 ok
 *   snapguest: BAD page 17 line 5: gen 3 expected 0x... found 0x...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE_SIZE       4096u
#define LINE_SIZE       64u
#define LINES_PER_PAGE  (PAGE_SIZE / LINE_SIZE)
#define HOT_PAGES       4096u    /* 16 MiB */
#define COLD_SLICE      64u      /* cold pages checked per hot round */
#define COUNTERS_MAGIC  UINT64_C(0x736e617067756573)   /* "snapgues" */

/*
 * What the host reads with QEMU's `xp` at the printed physical address.
 * It sits alone in a locked page, so the address holds while we run (the
 * init script turns transparent huge pages off, so nothing moves it).
 */
struct counters {
    uint64_t magic;
    uint64_t pages;     /* pages checked, written or not */
    uint64_t passes;    /* passes completed with every check good */
    uint64_t bad;       /* 1 once a check has failed */
};

static volatile struct counters *counters;
static uint64_t *buf;
static uint32_t *gen;
static uint32_t npages;

static inline uint64_t stamp(uint32_t g, uint32_t page, uint32_t line)
{
    return ((uint64_t)g << 32) | ((uint64_t)page << 6) | line;
}

static inline uint64_t *line_at(uint32_t page, uint32_t line)
{
    return buf + ((size_t)page * PAGE_SIZE + line * LINE_SIZE) / 8;
}

/* Console lines go out whole, so the host never reads half of one. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n > sizeof(line) - 2) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    if (write(STDOUT_FILENO, line, n) < 0) {
        /* Nowhere left to report it. */
    }
}

/*
 * A failed check ends the workload: the counters say so and the console
 * repeats the first bad page, so a host that starts reading late sees it.
 */
static void __attribute__((noreturn))
bad_page(uint32_t page, uint32_t line, uint64_t found)
{
    uint64_t expected = stamp(gen[page], page, line);

    counters->bad = 1;
    for (;;) {
        say("snapguest: BAD page %u line %u: gen %u expected 0x%016llx "
            "found 0x%016llx", page, line, gen[page],
            (unsigned long long)expected, (unsigned long long)found);
        sleep(5);
    }
}

static void check_page(uint32_t page)
{
    uint32_t g = gen[page];

    for (uint32_t l = 0; l < LINES_PER_PAGE; l++) {
        uint64_t v = *line_at(page, l);
        if (v != stamp(g, page, l)) {
            bad_page(page, l, v);
        }
    }
    counters->pages++;
}

static void write_page(uint32_t page)
{
    uint32_t g = gen[page] + 1;

    for (uint32_t l = 0; l < LINES_PER_PAGE; l++) {
        *line_at(page, l) = stamp(g, page, l);
    }
    gen[page] = g;
}

static void pass_done(const char *mode)
{
    counters->passes++;
    say("snapguest: %s pass %llu ok", mode,
        (unsigned long long)counters->passes);
}

static void run_sweep(void)
{
    for (;;) {
        for (uint32_t p = 0; p < npages; p++) {
            check_page(p);
            write_page(p);
        }
        pass_done("sweep");
    }
}

static void run_hot(void)
{
    uint32_t hot = npages < 2 * HOT_PAGES ? npages / 2 : HOT_PAGES;
    uint32_t cold = hot;

    for (;;) {
        for (uint32_t p = 0; p < hot; p++) {
            check_page(p);
            write_page(p);
        }
        for (uint32_t i = 0; i < COLD_SLICE && cold < npages; i++) {
            check_page(cold++);
        }
        if (cold == npages) {
            cold = hot;
            pass_done("hot");
        }
    }
}

static void run_read(void)
{
    for (uint32_t pass = 0;; pass++) {
        for (uint32_t p = 0; p < npages; p++) {
            check_page(p);
            if ((p & 63) == (pass & 63)) {
                write_page(p);
            }
        }
        pass_done("read");
    }
}

/* The guest-physical address of @addr, from /proc/self/pagemap. */
static uint64_t phys_addr(const void *addr)
{
    uint64_t entry;
    off_t off = (uintptr_t)addr / PAGE_SIZE * sizeof(entry);
    int fd = open("/proc/self/pagemap", O_RDONLY);

    if (fd < 0) {
        return 0;
    }
    if (pread(fd, &entry, sizeof(entry), off) != sizeof(entry)) {
        entry = 0;
    }
    close(fd);
    if (!(entry & (UINT64_C(1) << 63))) {
        return 0;
    }
    return (entry & ((UINT64_C(1) << 55) - 1)) * PAGE_SIZE +
           (uintptr_t)addr % PAGE_SIZE;
}

static void *map_locked(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

    if (p == MAP_FAILED) {
        say("snapguest: cannot map %zu bytes: %s", size, strerror(errno));
        exit(1);
    }
    return p;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "sweep";
    unsigned long mib = argc > 2 ? strtoul(argv[2], NULL, 0) : 0;
    void (*run)(void);
    uint64_t phys;

    if (!strcmp(mode, "sweep")) {
        run = run_sweep;
    } else if (!strcmp(mode, "hot")) {
        run = run_hot;
    } else if (!strcmp(mode, "read")) {
        run = run_read;
    } else {
        say("snapguest: unknown mode '%s' (sweep, hot or read)", mode);
        return 1;
    }
    if (mib < 2 || mib > 16384) {
        say("snapguest: size must be 2 to 16384 MiB, not '%s'",
            argc > 2 ? argv[2] : "");
        return 1;
    }
    if (mlockall(MCL_CURRENT | MCL_FUTURE) < 0) {
        say("snapguest: mlockall: %s", strerror(errno));
        return 1;
    }

    npages = mib * 1024 * 1024 / PAGE_SIZE;
    counters = map_locked(PAGE_SIZE);
    gen = map_locked((size_t)npages * sizeof(*gen));
    buf = map_locked((size_t)npages * PAGE_SIZE);
    counters->magic = COUNTERS_MAGIC;

    for (uint32_t p = 0; p < npages; p++) {
        for (uint32_t l = 0; l < LINES_PER_PAGE; l++) {
            *line_at(p, l) = stamp(0, p, l);
        }
    }

    phys = phys_addr((const void *)counters);
    if (!phys) {
        say("snapguest: cannot find the counters' physical address");
        return 1;
    }
    say("snapguest: ready mode=%s mib=%lu pages=%u counters=0x%llx",
        mode, mib, npages, (unsigned long long)phys);
    run();
    return 0;
}
