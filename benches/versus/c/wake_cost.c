// What a timed wake-up costs on this machine, without any runtime (DESIGN.md §1.5b, fourth pass).
//
//   cc -O2 -pthread wake_cost.c -o wake_cost
//   ./wake_cost oneshot THREADS PERIOD_US     each thread sleeps in epoll_pwait2 with a timeout,
//                                             the threads' ticks interleaved
//   ./wake_cost clocks THREADS PERIOD_US      each thread keeps two timerfds armed at its next two
//                                             ticks and re-arms only the one that fired
//   ./wake_cost watch PERIOD_US               one thread on two clocks, plus a third timerfd in a
//                                             sleeping sibling's epoll set pushed back on each wake
//
// Prints wake-ups per second and the process's CPU time (user + system) per wake-up. Run it
// under `taskset -c 0` to see what two threads sharing one CPU cost.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum mode { ONESHOT, CLOCKS, WATCH };
static enum mode mode;
static long period_ns;
static int nthreads;
static const double secs = 2.0;
static long wakes[16];
static int watch_fd, watch_ep;
static volatile int done;

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void arm_at(int fd, long at) {
    struct itimerspec s = {{0, 0}, {at / 1000000000L, at % 1000000000L}};
    timerfd_settime(fd, TFD_TIMER_ABSTIME, &s, 0);
}

static void *ticker(void *arg) {
    long i = (long)arg;
    int ep = epoll_create1(0);
    struct epoll_event ev[8];
    long start = now_ns(), end = start + (long)(secs * 1e9);
    long next = start + i * period_ns / nthreads + period_ns;
    if (mode == ONESHOT) {
        while (now_ns() < end) {
            long d = next - now_ns();
            if (d < 0) d = 0;
            struct timespec ts = {d / 1000000000L, d % 1000000000L};
            syscall(SYS_epoll_pwait2, ep, ev, 8, &ts, NULL, 8);
            wakes[i]++;
            long n = now_ns();
            while (next <= n) next += period_ns;
        }
        return 0;
    }
    int fd[2];
    long at[2] = {next, next + period_ns}, watch_at = 0;
    for (int k = 0; k < 2; k++) {
        fd[k] = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
        struct epoll_event e = {EPOLLIN | EPOLLET, {.u32 = k}};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd[k], &e);
        arm_at(fd[k], at[k]);
    }
    while (now_ns() < end) {
        int n = epoll_wait(ep, ev, 8, -1);
        wakes[i]++;
        long t = now_ns();
        for (int j = 0; j < n; j++) {
            int k = ev[j].data.u32;
            while (at[k] <= t) at[k] += 2 * period_ns;
            arm_at(fd[k], at[k]);
        }
        if (mode == WATCH && watch_at - t < 1000000L) {
            watch_at = t + 2000000L;
            arm_at(watch_fd, watch_at);
        }
    }
    return 0;
}

static void *sibling(void *arg) {
    (void)arg;
    struct epoll_event ev[4];
    while (!done) epoll_wait(watch_ep, ev, 4, -1);
    return 0;
}

static double cpu_us(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: wake_cost oneshot|clocks THREADS PERIOD_US | watch PERIOD_US\n");
        return 2;
    }
    mode = !strcmp(argv[1], "oneshot") ? ONESHOT : !strcmp(argv[1], "clocks") ? CLOCKS : WATCH;
    nthreads = mode == WATCH ? 1 : atoi(argv[2]);
    period_ns = atol(argv[mode == WATCH ? 2 : 3]) * 1000;
    if (nthreads < 1 || nthreads > 16 || period_ns <= 0) return 2;
    pthread_t sib, t[16];
    if (mode == WATCH) {
        watch_ep = epoll_create1(0);
        watch_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
        struct epoll_event e = {EPOLLIN | EPOLLET, {.u32 = 9}};
        epoll_ctl(watch_ep, EPOLL_CTL_ADD, watch_fd, &e);
        pthread_create(&sib, 0, sibling, 0);
        usleep(10000);
    }
    double c0 = cpu_us();
    for (long i = 0; i < nthreads; i++) pthread_create(&t[i], 0, ticker, (void *)i);
    for (int i = 0; i < nthreads; i++) pthread_join(t[i], 0);
    double cpu = cpu_us() - c0;
    long w = 0;
    for (int i = 0; i < nthreads; i++) w += wakes[i];
    printf("%s, %d thread(s), %ld µs each: %.0f wake-ups/s, %.1f µs CPU per wake-up\n", argv[1],
           nthreads, period_ns / 1000, w / secs, cpu / w);
    if (mode == WATCH) {
        done = 1;
        arm_at(watch_fd, now_ns() + 1000);
        pthread_join(sib, 0);
    }
    return 0;
}
