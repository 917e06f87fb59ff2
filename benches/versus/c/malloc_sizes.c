/*
 * malloc_sizes.c — which allocation sizes a run makes, to see a task's size class.
 *
 *   cc -O2 -shared -fPIC -o /tmp/malloc_sizes.so benches/versus/c/malloc_sizes.c
 *   LD_PRELOAD=/tmp/malloc_sizes.so target/release/versus --child loop ping_pong 2 ours 0.3
 *
 * At exit it prints every request size (up to 1024 bytes; larger ones are counted together
 * as 1024) made more than MALLOC_SIZES_MIN times (default 1000), to stderr. A task is one
 * allocation (header + scheduler + future), so the sizes that scale with the run are the
 * benchmark's tasks. glibc's fast bins hold chunks up to 128 bytes — requests up to 120 —
 * which free without the arena lock; DESIGN.md §1.11 ("What it costs") shows why that
 * boundary mattered for the observatory.
 *
 * Only malloc is counted (Rust's System allocator uses it for alignments up to 16).
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t);

static _Atomic unsigned long counts[1025];

void *malloc(size_t n) {
    atomic_fetch_add_explicit(&counts[n < 1024 ? n : 1024], 1, memory_order_relaxed);
    return __libc_malloc(n);
}

__attribute__((destructor)) static void report(void) {
    const char *min_env = getenv("MALLOC_SIZES_MIN");
    unsigned long min = min_env ? strtoul(min_env, NULL, 10) : 1000;
    for (int i = 0; i <= 1024; i++) {
        unsigned long c = atomic_load_explicit(&counts[i], memory_order_relaxed);
        if (c > min)
            fprintf(stderr, "size %s%d: %lu\n", i == 1024 ? ">=" : "", i, c);
    }
}
