/* Running the job: the launcher's child (mpirun) and the per-rank wrapper mpirun starts.
 *
 * Why a wrapper: when a rank dies, mpirun already ends the job within about a second, but what it
 * prints about it differs between Open MPI versions and exit paths. The wrapper is the rank's
 * parent, so it sees the exact wait status and prints one line naming the rank, its host and the
 * signal; it exits with 128 + signal, which mpirun treats as a failed rank (ending the job) and
 * passes on as its own exit status. Ranks that mpirun then terminates are told apart by the
 * SIGTERM the wrapper forwarded, and stay quiet. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "cli/launch.h"

static pid_t sl_forward_to;                /* the child signals are passed on to */
static volatile sig_atomic_t sl_forwarded; /* the signal passed on (or seen), 0 when none */

static const char *sl_signal_abbrev(int sig) {
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

static void sl_rank_forward(int sig) {
    sl_forwarded = sig;
    if (sl_forward_to > 0) kill(sl_forward_to, sig);
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

sl_status sl_launch_exec(const sl_strv *env, const sl_strv *argv, int *exit_status,
                         int *stopped_by) {
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
    *exit_status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    *stopped_by = sl_forwarded;
    /* stopped on request: report it the way a shell reports a process killed by the signal */
    if (sl_forwarded && *exit_status != 0) *exit_status = 128 + sl_forwarded;
    return SL_OK;
}

int sl_launch_rank_main(char **program) {
    const char *rank = getenv("OMPI_COMM_WORLD_RANK");
    if (!rank) rank = getenv("PMIX_RANK");
    if (!rank) rank = "?";
    char host[256] = "?";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    fflush(NULL);
    struct sigaction old[SL_N_FORWARD];
    sl_install(old, false); /* before fork: a SIGTERM right after it must still reach the rank */
    const pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "shardlab launch: rank %s on %s: fork failed: %s\n", rank, host,
                strerror(errno));
        return 127;
    }
    if (pid == 0) {
        sl_restore(old);
        sl_die_with_parent(SIGKILL);
        execvp(program[0], program);
        fprintf(stderr, "shardlab launch: rank %s on %s: cannot run '%s': %s\n", rank, host,
                program[0], strerror(errno));
        _exit(127);
    }
    sl_forward_to = pid;
    if (sl_forwarded) kill(pid, SIGTERM); /* arrived between fork and the line above */
    int raw = 0;
    if (sl_wait_status(pid, &raw) != 0) {
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
                    rank, (int)pid, host, sig, sl_signal_abbrev(sig), strsignal(sig));
        }
        return 128 + sig;
    }
    const int code = WEXITSTATUS(raw);
    if (code != 0 && !sl_forwarded) {
        fprintf(stderr,
                "shardlab launch: rank %s (pid %d on %s) exited with status %d; the job is "
                "ending\n",
                rank, (int)pid, host, code);
    }
    return code;
}
