/* omp_env.c - the thread pools' environment for the CLI.
 *
 * libgomp's default lets a thread that waits at a barrier spin for a while
 * before it sleeps. On a machine where another process keeps a core busy,
 * one of attn's threads is often preempted, and every parallel region then
 * waits for it while its partner spins on the other core: measured with the
 * baby GPT (`attn train`, 2 cores, other jobs running: bench/bench_loaded.sh)
 * 3.8-3.9 s a step with the default, 0.82 s with GOMP_SPINCOUNT=10000,
 * 0.29 s with OMP_WAIT_POLICY=PASSIVE and 0.31 s on one thread.
 *
 * On an idle machine, though, sleeping at once costs every region and
 * barrier a futex wake-up (about 650 a step of the baby GPT): medians of
 * 200 steps, in pairs run back to back, 32.1/21.5, 24.7/22.5, 32.4/30.1
 * and 31.5/29.2 ms with PASSIVE against GOMP_SPINCOUNT=10000; with a busy
 * loop at nice 19 as well (30.3 against 21.5: attn's threads preempt it);
 * with one at nice 0, spinning loses (87.0 against 34.7, one thread 33.3).
 * So the commands that run long parallel work (train, generate, classify,
 * bench) look at the machine first: over 50 ms, twice, how many cores other
 * processes at normal priority kept busy (/proc/stat, niced time left out),
 * rounded, the fewer of the two. None: a short spin (GOMP_SPINCOUNT=10000). Else PASSIVE, on the
 * cores left free (OMP_NUM_THREADS, unless the user set it): with one busy
 * process on two cores, the one-thread run, which two passive threads only
 * came near (34.7 against 33.3 ms). A busy process that starts later is not
 * seen: the price is the spin's, bounded.
 *
 * OpenBLAS starts a pool of its own threads when it is loaded, though attn
 * tells it to use one thread (OpenMP splits the products): each pool thread
 * allocates a 128 MB buffer when it starts and retries for ever if it cannot,
 * and exit() waits for the pool, so under a tight `ulimit -v` attn printed its
 * out-of-memory message and then spun instead of exiting.
 * OPENBLAS_NUM_THREADS=1 starts no pool.
 *
 * Both libraries read their variables once, when they are loaded (before
 * main), so the CLI sets them and executes itself again (twice when the user
 * set nothing: OpenBLAS's pool must be gone before the look at the machine); the library itself
 * never changes the process's environment. A user's OMP_WAIT_POLICY,
 * GOMP_SPINCOUNT or OPENBLAS_NUM_THREADS wins, and ATTN_NO_REEXEC=1 keeps the
 * libraries' defaults. */
#define _POSIX_C_SOURCE 200809L
#include "omp_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
/* The CPU time of the whole machine so far, in ticks: *busy at normal
 * priority (user, system, interrupts, steal; not nice), *all of it. */
static int cpu_ticks(unsigned long long *busy, unsigned long long *all)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    unsigned long long v[8] = {0};
    const int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                         &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 4) return -1;
    *busy = v[0] + v[2] + v[5] + v[6] + v[7];
    *all = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    return 0;
}

/* This process's CPU time so far, in seconds (OpenBLAS's pool, started
 * when it was loaded, may spin meanwhile). */
static double own_cpu_s(void)
{
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u)) return 0.0;
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

/* How many cores other processes at normal priority kept busy over the
 * next 50 ms (this one sleeps meanwhile; its own threads' time is taken
 * out), rounded; -1 when unknown. */
static long busy_cores_once(long cpus, long hz)
{
    unsigned long long b0, a0, b1, a1;
    if (cpu_ticks(&b0, &a0)) return -1;
    const double own0 = own_cpu_s();
    const struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    if (cpu_ticks(&b1, &a1) || a1 <= a0) return -1;
    double others = (double)(b1 - b0) - (own_cpu_s() - own0) * (double)hz;
    if (others < 0.0) others = 0.0;
    return (long)(others / (double)(a1 - a0) * (double)cpus + 0.5);
}

/* The fewer busy cores of two looks: a process busy for a moment (a shell
 * command, a compositor frame) must not cost a long run its threads. */
static long busy_cores(long cpus)
{
    const long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0) return -1;
    const long first = busy_cores_once(cpus, hz);
    if (first <= 0) return first;
    const long second = busy_cores_once(cpus, hz);
    return second < 0 ? -1 : second < first ? second : first;
}

/* The commands whose parallel regions run long enough for waiting to matter. */
static int runs_parallel_work(char **argv)
{
    static const char *const heavy[] = {"train", "generate", "classify", "bench"};
    if (!argv[0] || !argv[1]) return 0;
    for (size_t i = 0; i < sizeof heavy / sizeof *heavy; i++)
        if (strcmp(argv[1], heavy[i]) == 0) return 1;
    return 0;
}
#endif

void cli_omp_env(char **argv)
{
#ifdef __linux__
    if (getenv("ATTN_NO_REEXEC")) return;
    /* OpenBLAS's pool first: its threads spin for a while once loaded, and
     * the look at the machine below should see other processes' work only */
    if (!getenv("OPENBLAS_NUM_THREADS") && setenv("OPENBLAS_NUM_THREADS", "1", 1) == 0) {
        execv("/proc/self/exe", argv); /* returns only on failure */
        unsetenv("OPENBLAS_NUM_THREADS");
    }
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    int set_threads = 0;
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    const long busy = cpus > 1 && runs_parallel_work(argv) ? busy_cores(cpus) : -1;
    if (busy == 0) {
        if (setenv("GOMP_SPINCOUNT", "10000", 1)) return;
    } else {
        if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1)) return;
        /* the cores the others leave free (a user's OMP_NUM_THREADS or --threads wins) */
        if (busy > 0 && !getenv("OMP_NUM_THREADS")) {
            char n[24];
            snprintf(n, sizeof n, "%ld", busy < cpus ? cpus - busy : 1);
            set_threads = setenv("OMP_NUM_THREADS", n, 1) == 0;
        }
    }
    execv("/proc/self/exe", argv);
    unsetenv("OMP_WAIT_POLICY"), unsetenv("GOMP_SPINCOUNT");
    if (set_threads) unsetenv("OMP_NUM_THREADS");
#else
    (void)argv;
#endif
}
