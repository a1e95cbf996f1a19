#include "tests/launch/launch_harness.h"

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

double sl_lt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sl_lt_pause(void) {
    const struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
}

/* Under ASan the ranks' leak check must see past Open MPI, which keeps allocations until exit
 * (tests/comm/lsan_mpi.supp names its libraries). */
static void sl_lt_setenv_all(char *const *env) {
#ifdef __SANITIZE_ADDRESS__
    setenv("OMPI_MCA_mca_base_component_disable_dlclose", "1", 1);
    setenv("ASAN_OPTIONS", "fast_unwind_on_malloc=0", 1);
    setenv("LSAN_OPTIONS", "suppressions=" SL_SOURCE_DIR "/tests/comm/lsan_mpi.supp", 1);
#endif
    for (char *const *e = env; e && *e; e++) {
        char *copy = strdup(*e);
        char *eq = copy ? strchr(copy, '=') : NULL;
        if (!eq) _exit(126);
        *eq = '\0';
        setenv(copy, eq + 1, 1);
    }
}

void sl_lt_start(sl_lt_proc *p, char *const *env, double timeout_s, char *const *args) {
    char *argv[64];
    int n = 0;
    argv[n++] = sl_lt_shardlab_bin();
    argv[n++] = "launch";
    for (char *const *a = args; *a && n < 63; a++)
        argv[n++] = *a;
    argv[n] = NULL;
    char path[] = "/tmp/shardlab-launch-test-XXXXXX";
    p->fd = mkstemp(path);
    if (p->fd < 0) fail_msg("mkstemp: %s", strerror(errno));
    unlink(path);
    p->deadline = sl_lt_now() + timeout_s;
    fflush(NULL);
    p->pid = fork();
    if (p->pid < 0) fail_msg("fork: %s", strerror(errno));
    if (p->pid == 0) {
        setpgid(0, 0); /* so that a timeout can kill mpirun and every rank at once */
        dup2(p->fd, STDOUT_FILENO);
        dup2(p->fd, STDERR_FILENO);
        sl_lt_setenv_all(env);
        execv(argv[0], argv);
        _exit(127);
    }
}

static void sl_lt_slurp(int fd, char *out, size_t cap) {
    const ssize_t got = pread(fd, out, cap - 1, 0);
    out[got > 0 ? (size_t)got : 0] = '\0';
}

int sl_lt_finish(sl_lt_proc *p, char *out, size_t cap) {
    int raw = 0;
    bool timed_out = false;
    for (;;) {
        const pid_t w = waitpid(p->pid, &raw, WNOHANG);
        if (w == p->pid) break;
        if (w < 0 && errno != EINTR) fail_msg("waitpid: %s", strerror(errno));
        if (sl_lt_now() > p->deadline) {
            timed_out = true;
            kill(-p->pid, SIGKILL);
            waitpid(p->pid, &raw, 0);
            break;
        }
        sl_lt_pause();
    }
    sl_lt_slurp(p->fd, out, cap);
    close(p->fd);
    if (timed_out) fail_msg("launch did not finish in time (a hang); output:\n%s", out);
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

bool sl_lt_await_output(const sl_lt_proc *p, const char *needle, double timeout_s) {
    const double deadline = sl_lt_now() + timeout_s;
    static char buf[64 * 1024];
    do {
        sl_lt_slurp(p->fd, buf, sizeof buf);
        if (strstr(buf, needle)) return true;
        sl_lt_pause();
    } while (sl_lt_now() < deadline);
    return false;
}

int sl_lt_launch(char *const *env, double timeout_s, char *const *args, char *out, size_t cap) {
    sl_lt_proc p;
    sl_lt_start(&p, env, timeout_s, args);
    return sl_lt_finish(&p, out, cap);
}

void sl_lt_expect(const char *out, const char *needle) {
    if (!strstr(out, needle)) fail_msg("expected \"%s\" in the output:\n%s", needle, out);
}

void sl_lt_mkdtemp(char *dir, size_t cap) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, cap, "%s/shardlab-launch-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) fail_msg("mkdtemp %s: %s", dir, strerror(errno));
}

void sl_lt_rmtree(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fail_msg("cannot remove %s", dir);
}

const char *sl_lt_write(const char *dir, const char *name, const char *text, bool executable) {
    static char paths[8][4096];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, 4096, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) fail_msg("cannot write %s", path);
    if (executable && chmod(path, 0755) != 0) fail_msg("chmod %s: %s", path, strerror(errno));
    return path;
}

void sl_lt_read(const char *path, char *buf, size_t cap) {
    buf[0] = '\0';
    const int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    sl_lt_slurp(fd, buf, cap);
    close(fd);
}

int sl_lt_count_lines(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

char *sl_lt_shardlab_bin(void) {
    static char fallback[] = SL_BINARY_DIR "/shardlab";
    char *b = getenv("SHARDLAB_BIN");
    return b && *b ? b : fallback;
}

char *sl_lt_self(void) {
    static char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    return self;
}
