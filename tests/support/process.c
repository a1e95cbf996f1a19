/* Commands under a time limit, in their own process group, output captured (support.h). */
#include "tests/support/support.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

double sl_ts_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sl_ts_pause(void) {
    const struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
}

int sl_ts_split(const char *text, char *storage, char **argv, int cap) {
    strcpy(storage, text);
    int n = 0;
    for (char *tok = strtok(storage, " "); tok && n < cap - 1; tok = strtok(NULL, " "))
        argv[n++] = tok;
    argv[n] = NULL;
    return n;
}

/* An unlinked scratch file, open for reading and writing. */
static int sl_ts_scratch_fd(void) {
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/shardlab-test-output-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    const int fd = mkstemp(path);
    if (fd < 0) fail_msg("mkstemp %s: %s (is TMPDIR writable?)", path, strerror(errno));
    unlink(path);
    return fd;
}

/* In the child: the environment of the command. */
static void sl_ts_child_env(char *const *env) {
#ifdef __SANITIZE_ADDRESS__
    setenv("OMPI_MCA_mca_base_component_disable_dlclose", "1", 1);
    setenv("ASAN_OPTIONS", "fast_unwind_on_malloc=0", 1);
    setenv("LSAN_OPTIONS", "suppressions=" SL_SOURCE_DIR "/tests/support/lsan.supp", 1);
#endif
    for (char *const *e = env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        char name[256];
        if (!eq || (size_t)(eq - *e) >= sizeof name) {
            dprintf(STDERR_FILENO, "test support: env entry '%s' is not NAME=value\n", *e);
            _exit(126);
        }
        memcpy(name, *e, (size_t)(eq - *e));
        name[eq - *e] = '\0';
        setenv(name, eq + 1, 1);
    }
}

void sl_ts_start(sl_ts_proc *p, char *const *argv, const sl_ts_spawn *how, double timeout_s) {
    const sl_ts_spawn none = {0};
    if (!how) how = &none;
    snprintf(p->what, sizeof p->what, "%s", argv[0]);
    p->fd = sl_ts_scratch_fd();
    int in_fd = -1;
    if (how->input) {
        in_fd = sl_ts_scratch_fd();
        const size_t len = strlen(how->input);
        if (write(in_fd, how->input, len) != (ssize_t)len || lseek(in_fd, 0, SEEK_SET) != 0)
            fail_msg("cannot stage the standard input of %s: %s", argv[0], strerror(errno));
    }
    p->timeout_s = timeout_s;
    p->deadline = sl_ts_now() + timeout_s;
    fflush(NULL);
    p->pid = fork();
    if (p->pid < 0) fail_msg("fork for %s: %s", argv[0], strerror(errno));
    if (p->pid == 0) {
        setpgid(0, 0); /* so that a timeout can kill mpirun and every rank at once */
        dup2(p->fd, STDOUT_FILENO);
        if (how->drop_stderr) {
            const int null_fd = open("/dev/null", O_WRONLY);
            dup2(null_fd, STDERR_FILENO);
        } else {
            dup2(p->fd, STDERR_FILENO);
        }
        if (in_fd >= 0) dup2(in_fd, STDIN_FILENO);
        sl_ts_child_env(how->env);
        if (how->cwd && chdir(how->cwd) != 0) {
            dprintf(STDOUT_FILENO, "test support: cannot enter %s: %s\n", how->cwd,
                    strerror(errno));
            _exit(126);
        }
        execv(argv[0], argv);
        dprintf(STDOUT_FILENO, "test support: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (in_fd >= 0) close(in_fd);
}

/* Waits for p (killing its group at the deadline); returns the raw wait status. */
static int sl_ts_wait(sl_ts_proc *p, bool *timed_out) {
    int raw = 0;
    *timed_out = false;
    for (;;) {
        const pid_t w = waitpid(p->pid, &raw, WNOHANG);
        if (w == p->pid) break;
        if (w < 0 && errno != EINTR) fail_msg("waitpid %s: %s", p->what, strerror(errno));
        if (sl_ts_now() > p->deadline) {
            *timed_out = true;
            kill(-p->pid, SIGKILL);
            waitpid(p->pid, &raw, 0);
            break;
        }
        sl_ts_pause();
    }
    return raw;
}

/* Up to cap - 1 bytes of fd from its start into out, NUL-terminated; returns the count. */
static size_t sl_ts_slurp(int fd, char *out, size_t cap) {
    size_t got = 0;
    while (got + 1 < cap) {
        const ssize_t n = pread(fd, out + got, cap - 1 - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    out[got] = '\0';
    return got;
}

static int sl_ts_status(sl_ts_proc *p, int raw, bool timed_out, bool *report, const char *out) {
    if (timed_out && !report)
        fail_msg("%s did not finish within %g s (a hang?); output:\n%s", p->what, p->timeout_s,
                 out);
    if (report) *report = timed_out;
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

int sl_ts_finish(sl_ts_proc *p, char *out, size_t cap, bool *timed_out) {
    bool late;
    const int raw = sl_ts_wait(p, &late);
    sl_ts_slurp(p->fd, out, cap);
    close(p->fd);
    return sl_ts_status(p, raw, late, timed_out, out);
}

int sl_ts_finish_alloc(sl_ts_proc *p, char **out, bool *timed_out) {
    bool late;
    const int raw = sl_ts_wait(p, &late);
    struct stat sb;
    const size_t len = fstat(p->fd, &sb) == 0 && sb.st_size > 0 ? (size_t)sb.st_size : 0;
    *out = malloc(len + 1);
    assert_non_null(*out);
    sl_ts_slurp(p->fd, *out, len + 1);
    close(p->fd);
    return sl_ts_status(p, raw, late, timed_out, *out);
}

bool sl_ts_await_output(const sl_ts_proc *p, const char *needle, double timeout_s) {
    const double deadline = sl_ts_now() + timeout_s;
    static char buf[64 * 1024];
    do {
        sl_ts_slurp(p->fd, buf, sizeof buf);
        if (strstr(buf, needle)) return true;
        sl_ts_pause();
    } while (sl_ts_now() < deadline);
    return false;
}

int sl_ts_run(char *const *argv, const sl_ts_spawn *how, double timeout_s, char *out, size_t cap,
              bool *timed_out) {
    sl_ts_proc p;
    sl_ts_start(&p, argv, how, timeout_s);
    return sl_ts_finish(&p, out, cap, timed_out);
}

int sl_ts_shardlab(const char *args, const sl_ts_spawn *how, double timeout_s, char **out) {
    char *storage = malloc(strlen(args) + 1);
    assert_non_null(storage);
    char *argv[256];
    argv[0] = sl_ts_shardlab_bin();
    sl_ts_split(args, storage, argv + 1, 255);
    sl_ts_proc p;
    sl_ts_start(&p, argv, how, timeout_s);
    const int status = sl_ts_finish_alloc(&p, out, NULL);
    free(storage);
    return status;
}

void sl_ts_launch_start(sl_ts_proc *p, char *const *env, double timeout_s, char *const *args) {
    char *argv[64];
    int n = 0;
    argv[n++] = sl_ts_shardlab_bin();
    argv[n++] = "launch";
    for (char *const *a = args; *a; a++) {
        if (n == 63) fail_msg("sl_ts_launch_start: more than 61 arguments");
        argv[n++] = *a;
    }
    argv[n] = NULL;
    const sl_ts_spawn how = {.env = env};
    sl_ts_start(p, argv, &how, timeout_s);
}

int sl_ts_launch(char *const *env, double timeout_s, char *const *args, char *out, size_t cap) {
    sl_ts_proc p;
    sl_ts_launch_start(&p, env, timeout_s, args);
    return sl_ts_finish(&p, out, cap, NULL);
}
