/* Running the job: the launcher's child (mpirun) and the per-rank wrapper mpirun starts.
 *
 * Why a wrapper: when a rank dies, mpirun already ends the job within about a second, but what it
 * prints about it differs between Open MPI versions and exit paths. The wrapper is the rank's
 * parent, so it sees the exact wait status and prints one line naming the rank, its host and the
 * signal; it exits with 128 + signal, which mpirun treats as a failed rank (ending the job) and
 * passes on as its own exit status. Ranks that mpirun then terminates are told apart by the
 * SIGTERM the wrapper forwarded, and stay quiet.
 *
 * What mpirun does not do (measured, Open MPI 4.1): when mpirun itself is killed, its ranks run
 * on, and a shell-script rank's commands outlive the script. So the wrapper ends its program's
 * whole process group when the program exits or mpirun goes, and the launcher — their subreaper
 * — waits for every leftover before it returns (and before a restart starts the job again). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "cli/launch.h"

/* How long a rank whose mpirun is gone has to end after SIGTERM before it gets SIGKILL. */
#define SL_ORPHAN_GRACE_S 5.0

static pid_t sl_forward_to;                /* the child signals are passed on to */
static volatile sig_atomic_t sl_forwarded; /* the signal passed on (or seen), 0 when none */

const char *sl_launch_signal_name(int sig) {
    switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGBUS: return "SIGBUS";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    default: return "signal";
    }
}

/* Signals from the terminal (si_code not SI_USER/SI_QUEUE) already reached the whole foreground
 * process group, mpirun included; passing them on again would make mpirun's second Ctrl-C
 * handling kill the job without cleanup. Signals sent to the launcher alone are passed on. */
static void sl_launcher_forward(int sig, siginfo_t *info, void *ctx) {
    (void)ctx;
    sl_forwarded = sig;
    if (info && info->si_code != SI_USER && info->si_code != SI_QUEUE) return;
    if (sl_forward_to > 0) kill(sl_forward_to, sig);
}

/* The rank's program leads its own process group: a signal reaches the helpers it started too
 * (a shell script's commands), as torchrun signals a worker's whole group — or the program alone
 * if it moved to another group. */
static void sl_signal_program(pid_t pid, int sig) {
    if (kill(-pid, sig) != 0) kill(pid, sig);
}

static void sl_rank_forward(int sig) {
    sl_forwarded = sig;
    if (sl_forward_to > 0) sl_signal_program(sl_forward_to, sig);
}

static const int sl_forward_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
#define SL_N_FORWARD (sizeof sl_forward_signals / sizeof sl_forward_signals[0])

static void sl_install(struct sigaction *old, bool launcher) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    if (launcher) {
        sa.sa_sigaction = sl_launcher_forward;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
    } else {
        sa.sa_handler = sl_rank_forward;
        sa.sa_flags = SA_RESTART;
    }
    for (size_t i = 0; i < SL_N_FORWARD; i++)
        sigaction(sl_forward_signals[i], &sa, &old[i]);
}

static void sl_restore(const struct sigaction *old) {
    for (size_t i = 0; i < SL_N_FORWARD; i++)
        sigaction(sl_forward_signals[i], &old[i], NULL);
}

/* In a forked child: the child dies with its parent (Linux), so neither mpirun nor a rank can
 * outlive the process that reports on it. */
static void sl_die_with_parent(int sig) {
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, sig);
#else
    (void)sig;
#endif
}

static int sl_wait_status(pid_t pid, int *raw) {
    for (;;) {
        if (waitpid(pid, raw, 0) == pid) return 0;
        if (errno != EINTR) return -1;
    }
}

static double sl_exec_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Ranks that mpirun left behind when it was killed became the launcher's children (it is their
 * subreaper); their wrappers end them within SL_ORPHAN_GRACE_S (sl_rank_wait). Waiting for them
 * keeps a restarted job from running beside the previous one. */
static void sl_reap_leftovers(void) {
    const double deadline = sl_exec_now() + 2.0 * SL_ORPHAN_GRACE_S + 1.0;
    const struct timespec pause = {0, 50 * 1000 * 1000};
    for (;;) {
        int raw = 0;
        const pid_t w = waitpid(-1, &raw, WNOHANG);
        if (w > 0 || (w < 0 && errno == EINTR)) continue;
        if (w < 0) return; /* ECHILD: nothing left */
        if (sl_exec_now() > deadline) {
            fprintf(stderr,
                    "shardlab launch: processes of the job mpirun left behind are still "
                    "running after %g s; going on without them\n",
                    2.0 * SL_ORPHAN_GRACE_S + 1.0);
            return;
        }
        nanosleep(&pause, NULL);
    }
}

sl_status sl_launch_exec(const sl_strv *env, const sl_strv *argv, int *exit_status,
                         int *stopped_by) {
#ifdef __linux__
    prctl(PR_SET_CHILD_SUBREAPER, 1);
#endif
    fflush(NULL);
    const pid_t pid = fork();
    if (pid < 0) return sl_error_set(SL_ERR_IO, "launch: fork failed: %s", strerror(errno));
    if (pid == 0) {
        sl_die_with_parent(SIGTERM);
        for (size_t i = 0; i < env->n; i++) {
            char *eq = strchr(env->v[i], '=');
            *eq = '\0';
            setenv(env->v[i], eq + 1, 1);
        }
        execv(argv->v[0], argv->v);
        fprintf(stderr, "shardlab: error: launch: cannot run %s: %s\n", argv->v[0],
                strerror(errno));
        _exit(127);
    }
    struct sigaction old[SL_N_FORWARD];
    sl_forward_to = pid;
    sl_forwarded = 0;
    sl_install(old, true);
    int raw = 0;
    const int rc = sl_wait_status(pid, &raw);
    sl_restore(old);
    sl_forward_to = 0;
    if (rc != 0)
        return sl_error_set(SL_ERR_IO, "launch: waiting for mpirun failed: %s", strerror(errno));
    if (WIFSIGNALED(raw) && !sl_forwarded) {
        fprintf(stderr,
                "shardlab launch: mpirun (pid %d) was killed by signal %d (%s); ending the "
                "ranks it leaves behind\n",
                (int)pid, WTERMSIG(raw), sl_launch_signal_name(WTERMSIG(raw)));
    }
    sl_reap_leftovers();
    *exit_status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    *stopped_by = sl_forwarded;
    /* stopped on request: report it the way a shell reports a process killed by the signal */
    if (sl_forwarded && *exit_status != 0) *exit_status = 128 + sl_forwarded;
    return SL_OK;
}

/* One line for the launcher (launch_restart.c), written with a single append so that lines of
 * ranks failing together never interleave. The file exists on the launcher's machine only. */
static void sl_rank_record_failure(const char *path, const char *rank, pid_t pid, const char *host,
                                   const char *kind, int value) {
    if (!path || !*path) return;
    const int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0) return;
    char line[512];
    const int n =
        snprintf(line, sizeof line, "%s %d %s %s %d\n", rank, (int)pid, host, kind, value);
    if (n > 0 && (size_t)n < sizeof line && write(fd, line, (size_t)n) != n) {
        fprintf(stderr, "shardlab launch: rank %s: cannot record the failure in %s: %s\n", rank,
                path, strerror(errno));
    }
    close(fd);
}

/* Waits for the rank's program like sl_wait_status, and also watches the wrapper's own parent
 * (mpirun, or Open MPI's daemon on another machine): when it goes — killed, say — the program is
 * told to stop (SIGTERM, then SIGKILL after a grace period) instead of running on unsupervised
 * beside the job a restart starts next. Polled every 0.1 s (a parent-death signal would follow
 * the thread of mpirun that started the wrapper, not mpirun); SIGCHLD, blocked by the caller,
 * ends each pause as soon as the program exits. */
static int sl_rank_wait(pid_t pid, pid_t parent, int *raw) {
    const struct timespec poll = {0, 100 * 1000 * 1000};
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    double orphaned_for = -1.0; /* seconds since the parent went; < 0 while it is there */
    for (;;) {
        const pid_t w = waitpid(pid, raw, WNOHANG);
        if (w == pid) return 0;
        if (w < 0 && errno != EINTR) return -1;
        if (orphaned_for < 0.0 && getppid() != parent) {
            sl_forwarded = SIGTERM;
            sl_signal_program(pid, SIGTERM);
            orphaned_for = 0.0;
        } else if (orphaned_for >= 0.0) {
            orphaned_for += 0.1;
            if (orphaned_for >= SL_ORPHAN_GRACE_S) sl_signal_program(pid, SIGKILL);
        }
        sigtimedwait(&chld, NULL, &poll);
    }
}

int sl_launch_rank_main(char **program) {
    const pid_t parent = getppid();
    const char *rank = getenv("OMPI_COMM_WORLD_RANK");
    if (!rank) rank = getenv("PMIX_RANK");
    if (!rank) rank = "?";
    char host[256] = "?";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    char failures[4096] = "";
    const char *fp = getenv(SL_LAUNCH_FAILURES_ENV);
    if (fp) snprintf(failures, sizeof failures, "%s", fp);
    fflush(NULL);
    struct sigaction old[SL_N_FORWARD];
    sl_install(old, false); /* before fork: a SIGTERM right after it must still reach the rank */
    sigset_t chld, old_mask;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old_mask);
    const pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "shardlab launch: rank %s on %s: fork failed: %s\n", rank, host,
                strerror(errno));
        return 127;
    }
    if (pid == 0) {
        setpgid(0, 0);
        sl_restore(old);
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        sl_die_with_parent(SIGKILL);
        unsetenv(SL_LAUNCH_FAILURES_ENV);
        execvp(program[0], program);
        fprintf(stderr, "shardlab launch: rank %s on %s: cannot run '%s': %s\n", rank, host,
                program[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also in the child: whichever runs first */
    sl_forward_to = pid;
    if (sl_forwarded) sl_signal_program(pid, SIGTERM); /* arrived between fork and the line above */
    int raw = 0;
    const int waited = sl_rank_wait(pid, parent, &raw);
    kill(-pid, SIGKILL); /* helpers the program left in its group end with it */
    if (waited != 0) {
        fprintf(stderr, "shardlab launch: rank %s on %s: waiting for pid %d failed: %s\n", rank,
                host, (int)pid, strerror(errno));
        return 127;
    }
    if (WIFSIGNALED(raw)) {
        const int sig = WTERMSIG(raw);
        if (!sl_forwarded) {
            fprintf(stderr,
                    "shardlab launch: rank %s (pid %d on %s) was killed by signal %d (%s: "
                    "%s); the job is ending\n",
                    rank, (int)pid, host, sig, sl_launch_signal_name(sig), strsignal(sig));
            sl_rank_record_failure(failures, rank, pid, host, "signal", sig);
        }
        return 128 + sig;
    }
    const int code = WEXITSTATUS(raw);
    if (code != 0 && !sl_forwarded) {
        fprintf(stderr,
                "shardlab launch: rank %s (pid %d on %s) exited with status %d; the job is "
                "ending\n",
                rank, (int)pid, host, code);
        sl_rank_record_failure(failures, rank, pid, host, "exit", code);
    }
    return code;
}
