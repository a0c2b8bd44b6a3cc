/* A slower disk, for the durable store's group-commit figure (docs/performance.md): preloaded,
 * every fsync and fdatasync of the process returns only after a further SLOWSYNC_US microseconds
 * (default 2000), so a fast disk behaves like one of a few hundred fsyncs a second.
 *
 *   gcc -shared -fPIC -O2 -o target/slow_fsync.so benches/slow_fsync.c -ldl
 *   LD_PRELOAD=$PWD/target/slow_fsync.so EKV_BENCH_ONLY=writes \
 *       target/release/examples/durable_bench 3 1000
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static void delay(void) {
    const char *us = getenv("SLOWSYNC_US");
    long n = us ? atol(us) : 2000;
    struct timespec t = { n / 1000000, (n % 1000000) * 1000 };
    nanosleep(&t, 0);
}
int fsync(int fd) { static int (*real)(int); if (!real) real = dlsym(RTLD_NEXT, "fsync"); int r = real(fd); delay(); return r; }
int fdatasync(int fd) { static int (*real)(int); if (!real) real = dlsym(RTLD_NEXT, "fdatasync"); int r = real(fd); delay(); return r; }
