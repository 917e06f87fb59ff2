/*
 * malloc_sizes.c — which allocation sizes a run makes, to see a task's size class, and where
 * in its cache lines each size lands.
 *
 *   cc -O2 -shared -fPIC -o /tmp/malloc_sizes.so benches/versus/c/malloc_sizes.c
 *   LD_PRELOAD=/tmp/malloc_sizes.so target/release/versus --child loop ping_pong 2 ours 0.3
 *
 * At exit it prints every request size (up to 1024 bytes; larger ones are counted together
 * as 1024) made more than MALLOC_SIZES_MIN times (default 1000), to stderr, with how many of
 * those blocks started 0, 16, 32 and 48 bytes into a 64-byte cache line. A task is one
 * allocation (cold part + header + scheduler + future), so the sizes that scale with the run are the
 * benchmark's tasks. glibc's fast bins hold chunks up to 128 bytes — requests up to 120 —
 * which free without the arena lock; DESIGN.md §1.11 ("What it costs") shows why that
 * boundary mattered for the observatory.
 *
 * MALLOC_SIZES_LEAK=N allocates (and never frees) one N-byte block before anything else,
 * shifting where later blocks land: a 112-byte request's 128-byte chunks all share one offset
 * in their lines, and before tasks put their cold part in front of the header (DESIGN.md §1.3)
 * that offset decided whether neighbouring tasks shared a line (DESIGN.md §1.11, "What is
 * left", yield_many at 2 workers).
 *
 * Only malloc is counted (Rust's System allocator uses it for alignments up to 16).
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t);

/* Per request size, per offset of the block in its cache line (0, 16, 32, 48). */
static _Atomic unsigned long counts[1025][4];
static atomic_int leaked;

void *malloc(size_t n) {
    if (!atomic_load_explicit(&leaked, memory_order_relaxed) &&
        !atomic_exchange_explicit(&leaked, 1, memory_order_relaxed)) {
        const char *leak = getenv("MALLOC_SIZES_LEAK");
        if (leak)
            (void)__libc_malloc(strtoul(leak, NULL, 10));
    }
    void *p = __libc_malloc(n);
    atomic_fetch_add_explicit(&counts[n < 1024 ? n : 1024][((uintptr_t)p >> 4) & 3], 1,
                              memory_order_relaxed);
    return p;
}

__attribute__((destructor)) static void report(void) {
    const char *min_env = getenv("MALLOC_SIZES_MIN");
    unsigned long min = min_env ? strtoul(min_env, NULL, 10) : 1000;
    for (int i = 0; i <= 1024; i++) {
        unsigned long at[4], c = 0;
        for (int k = 0; k < 4; k++)
            c += at[k] = atomic_load_explicit(&counts[i][k], memory_order_relaxed);
        if (c > min)
            fprintf(stderr, "size %s%d: %lu (in its line at 0/16/32/48: %lu %lu %lu %lu)\n",
                    i == 1024 ? ">=" : "", i, c, at[0], at[1], at[2], at[3]);
    }
}
