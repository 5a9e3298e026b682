/*
 * The machine's own limits, printed next to the snapshot figures so that
 * they can be read against what the hardware and kernel allow:
 *
 *   memcpy GiB/s, write+fsync GiB/s to a directory's disk,
 *   UFFDIO_WRITEPROTECT ms/GiB (protect and unprotect, on THP and on
 *   4 KiB pages), fork() ms/GiB (THP and 4 KiB).
 *
 *     limits [-m MiB] [-d DIR]
 *
 * Prints one JSON object.  A figure the kernel refuses is null, with the
 * reason in "notes".  Built by bench/run with the host cc.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MiB (1UL << 20)
#define GiB (1UL << 30)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char notes[1024];

static void note(const char *what, int err)
{
    size_t len = strlen(notes);
    snprintf(notes + len, sizeof(notes) - len, "%s%s: %s",
             len ? "; " : "", what, strerror(err));
}

/* Anonymous memory of @size, populated, on huge pages or on 4 KiB. */
static char *populated(size_t size, bool huge)
{
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    madvise(p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    for (size_t off = 0; off < size; off += 4096) {
        p[off] = 1;
    }
    return p;
}

static double memcpy_gibs(size_t size)
{
    char *src = populated(size, true);
    char *dst = populated(size, true);
    double best = 0;
    if (!src || !dst) {
        note("memcpy mmap", errno);
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        double t0 = now();
        memcpy(dst, src, size);
        double rate = size / (now() - t0) / GiB;
        best = rate > best ? rate : best;
    }
    munmap(src, size);
    munmap(dst, size);
    return best;
}

/* Sequential 8 MiB writes of @size bytes, then fsync: GiB/s. */
static double write_fsync_gibs(const char *dir, size_t size)
{
    char path[4096];
    size_t chunk = 8 * MiB;
    char *buf = populated(chunk, false);
    snprintf(path, sizeof(path), "%s/limits-write.tmp", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || !buf) {
        note("write open", errno);
        return -1;
    }
    memset(buf, 0x5a, chunk);
    double t0 = now();
    for (size_t done = 0; done < size; done += chunk) {
        if (write(fd, buf, chunk) != (ssize_t)chunk) {
            note("write", errno);
            close(fd);
            unlink(path);
            return -1;
        }
    }
    fsync(fd);
    double rate = size / (now() - t0) / GiB;
    close(fd);
    unlink(path);
    munmap(buf, chunk);
    return rate;
}

/* ms/GiB to write-protect, then to unprotect, @size populated bytes. */
static bool uffd_wp_ms(size_t size, bool huge, double *protect,
                       double *unprotect)
{
    int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (uffd < 0) {
        note("userfaultfd", errno);
        return false;
    }
    struct uffdio_api api = { .api = UFFD_API,
                              .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP };
    char *p = populated(size, huge);
    bool ok = false;
    if (ioctl(uffd, UFFDIO_API, &api) < 0 || !p) {
        note("UFFDIO_API", errno);
        goto out;
    }
    struct uffdio_register reg = {
        .range = { (uintptr_t)p, size },
        .mode = UFFDIO_REGISTER_MODE_WP,
    };
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
        note("UFFDIO_REGISTER", errno);
        goto out;
    }
    struct uffdio_writeprotect wp = {
        .range = { (uintptr_t)p, size },
        .mode = UFFDIO_WRITEPROTECT_MODE_WP,
    };
    double t0 = now();
    if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0) {
        note("UFFDIO_WRITEPROTECT", errno);
        goto out;
    }
    double t1 = now();
    wp.mode = 0;
    if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0) {
        note("UFFDIO_WRITEPROTECT off", errno);
        goto out;
    }
    double t2 = now();
    *protect = (t1 - t0) * 1000 * GiB / size;
    *unprotect = (t2 - t1) * 1000 * GiB / size;
    ok = true;
out:
    if (p) {
        munmap(p, size);
    }
    close(uffd);
    return ok;
}

/* ms/GiB for fork() to return in the parent, @size populated bytes. */
static double fork_ms(size_t size, bool huge)
{
    char *p = populated(size, huge);
    if (!p) {
        note("fork mmap", errno);
        return -1;
    }
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) {
        _exit(0);
    }
    double t = now() - t0;
    if (pid < 0) {
        note("fork", errno);
        munmap(p, size);
        return -1;
    }
    waitpid(pid, NULL, 0);
    munmap(p, size);
    return t * 1000 * GiB / size;
}

static void put(const char *key, double v, const char *sep)
{
    if (v < 0) {
        printf("  \"%s\": null%s\n", key, sep);
    } else {
        printf("  \"%s\": %.3f%s\n", key, v, sep);
    }
}

int main(int argc, char **argv)
{
    size_t size = GiB;
    const char *dir = ".";
    int opt;

    while ((opt = getopt(argc, argv, "m:d:")) != -1) {
        if (opt == 'm') {
            size = strtoul(optarg, NULL, 0) * MiB;
        } else if (opt == 'd') {
            dir = optarg;
        } else {
            fprintf(stderr, "usage: %s [-m MiB] [-d DIR]\n", argv[0]);
            return 1;
        }
    }

    double wp_thp = -1, unwp_thp = -1, wp_4k = -1, unwp_4k = -1;
    if (!uffd_wp_ms(size, true, &wp_thp, &unwp_thp)) {
        wp_thp = unwp_thp = -1;
    }
    if (!uffd_wp_ms(size, false, &wp_4k, &unwp_4k)) {
        wp_4k = unwp_4k = -1;
    }
    double fork_thp = fork_ms(size, true);
    double fork_4k = fork_ms(size, false);
    double cpy = memcpy_gibs(size / 2);
    double disk = write_fsync_gibs(dir, size);

    printf("{\n");
    put("memcpy_gibs", cpy, ",");
    put("write_fsync_gibs", disk, ",");
    put("uffd_wp_thp_ms_per_gib", wp_thp, ",");
    put("uffd_unwp_thp_ms_per_gib", unwp_thp, ",");
    put("uffd_wp_4k_ms_per_gib", wp_4k, ",");
    put("uffd_unwp_4k_ms_per_gib", unwp_4k, ",");
    put("fork_thp_ms_per_gib", fork_thp, ",");
    put("fork_4k_ms_per_gib", fork_4k, ",");
    printf("  \"size_mib\": %zu,\n", size / MiB);
    printf("  \"notes\": \"%s\"\n}\n", notes);
    return 0;
}
