/*
 * Does a userfaultfd see writes the kernel makes to write-protected memory?
 *
 *   uffd-kernel-write dev    userfaultfd from /dev/userfaultfd (all faults)
 *   uffd-kernel-write user   userfaultfd(UFFD_USER_MODE_ONLY)
 *
 * Write-protects 4 populated anonymous pages, then read()s 4 pages of a
 * file into them (the kernel writes them, as when a disk image is read
 * into guest RAM) and then writes one page from user space.  A handler
 * thread counts the write-protect faults it receives and unprotects each
 * page.  Prints what read() returned and what the handler saw.
 *
 * Exit status 0 if it saw what docs/devel/migration/background-snapshot.rst
 * (patch 0011 of qemu/patches) says: through /dev/userfaultfd the read()
 * waits for the handler and succeeds; with UFFD_USER_MODE_ONLY it fails
 * with EFAULT and the handler hears of nothing.  1 if not, 2 if it could
 * not run.  Not run by CI; build and run it by hand:
 *
 *   gcc -O2 -Wall -pthread -o /tmp/uffd-kernel-write tests/qemu/uffd-kernel-write.c
 *   /tmp/uffd-kernel-write dev      # as root, or with access to the device
 *   /tmp/uffd-kernel-write user     # any user
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NPAGES 4

static long page;
static int uffd;
static char *mem;
static _Atomic int faults;   /* written by the handler, read by main */
static volatile int stop;

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void *handler(void *arg)
{
    struct pollfd p = { .fd = uffd, .events = POLLIN };
    struct uffd_msg msg;
    (void)arg;

    while (!stop) {
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        if (read(uffd, &msg, sizeof(msg)) != sizeof(msg)) {
            continue;
        }
        if (msg.event != UFFD_EVENT_PAGEFAULT) {
            continue;
        }
        faults++;
        printf("  handler: fault on page %ld, flags 0x%llx%s\n",
               (long)((char *)(uintptr_t)msg.arg.pagefault.address - mem) / page,
               (unsigned long long)msg.arg.pagefault.flags,
               msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP ? " (WP)" : "");
        struct uffdio_writeprotect wp = {
            .range = { msg.arg.pagefault.address & ~(page - 1), page },
            .mode = 0,          /* unprotect and wake the writer */
        };
        if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp)) {
            die("UFFDIO_WRITEPROTECT (unprotect)");
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int user_only = argc > 1 && !strcmp(argv[1], "user");
    page = sysconf(_SC_PAGESIZE);

    if (user_only) {
        uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
        if (uffd < 0) {
            die("userfaultfd(UFFD_USER_MODE_ONLY)");
        }
    } else {
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev < 0) {
            die("open /dev/userfaultfd");
        }
        uffd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        if (uffd < 0) {
            die("USERFAULTFD_IOC_NEW");
        }
        close(dev);
    }
    printf("%s\n", user_only ? "userfaultfd(UFFD_USER_MODE_ONLY)"
                             : "/dev/userfaultfd (kernel faults too)");

    struct uffdio_api api = { .api = UFFD_API,
                              .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP };
    if (ioctl(uffd, UFFDIO_API, &api)) {
        die("UFFDIO_API");
    }

    size_t len = NPAGES * page;
    mem = mmap(NULL, len + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        die("mmap");
    }
    memset(mem, 'a', len + page);       /* populate: WP needs present pages */

    struct uffdio_register reg = { .range = { (unsigned long)mem, len + page },
                                   .mode = UFFDIO_REGISTER_MODE_WP };
    if (ioctl(uffd, UFFDIO_REGISTER, &reg)) {
        die("UFFDIO_REGISTER");
    }
    struct uffdio_writeprotect wp = { .range = { (unsigned long)mem, len + page },
                                      .mode = UFFDIO_WRITEPROTECT_MODE_WP };
    if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp)) {
        die("UFFDIO_WRITEPROTECT");
    }

    char path[] = "/tmp/uffd-kernel-write.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        die("mkstemp");
    }
    unlink(path);
    char *buf = malloc(len);
    memset(buf, 'f', len);
    if (write(fd, buf, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET)) {
        die("write file");
    }

    pthread_t t;
    pthread_create(&t, NULL, handler, NULL);

    printf("kernel write: read(file, protected memory, %zu)\n", len);
    ssize_t n = read(fd, mem, len);
    int err = errno;
    printf("  read() returned %zd%s%s\n", n, n < 0 ? ", errno " : "",
           n < 0 ? strerrorname_np(err) : "");
    int same = 0;
    for (int i = 0; i < NPAGES; i++) {
        same += !memcmp(mem + i * page, buf + i * page, page);
    }
    printf("  faults seen by the handler: %d; pages holding the file: %d of %d\n",
           faults, same, NPAGES);
    int kernel_faults = faults;

    printf("user write: one byte into page %d, still protected\n", NPAGES);
    mem[len] = 'u';
    printf("  faults seen by the handler: %d\n", faults - kernel_faults);

    stop = 1;
    pthread_join(t, NULL);
    int as_documented = user_only
        ? n == -1 && err == EFAULT && kernel_faults == 0
        : n == (ssize_t)len && kernel_faults == NPAGES && same == NPAGES;
    printf("%s\n", as_documented ? "as documented" : "NOT as documented");
    fflush(stdout);
    return as_documented ? 0 : 1;
}
