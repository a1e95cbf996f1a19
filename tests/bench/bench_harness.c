/* Helpers of the benchmark tests (bench_harness.h). */
#include "tests/bench/bench_harness.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void sl_bt_mkdtemp(const char *tag, char *dir) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, 256, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (!mkdtemp(dir)) dir[0] = '\0';
}

void sl_bt_rmtree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[4096];
        sl_bt_path(path, dir, e->d_name);
        remove(path);
    }
    closedir(d);
    rmdir(dir);
}

void sl_bt_path(char *path, const char *dir, const char *name) {
    snprintf(path, 4096, "%s/%s", dir, name);
}

void sl_bt_write(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

char *sl_bt_read(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(n > 0 ? (size_t)n + 1 : 1);
    const size_t got = buf && n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    if (buf) buf[got] = '\0';
    fclose(f);
    return buf;
}

char *sl_bt_shardlab(void) {
    static char fallback[] = SL_BINARY_DIR "/shardlab";
    char *b = getenv("SHARDLAB_BIN");
    return b && *b ? b : fallback;
}

static double sl_bt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int sl_bt_run(char *const *argv, char *const *env, double timeout_s, char *out, size_t cap,
              bool *timed_out) {
    *timed_out = false;
    out[0] = '\0';
    FILE *capture = tmpfile();
    if (!capture) return -1;
    fflush(NULL);
    const pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0); /* a timeout kills mpirun and every rank with it */
        dup2(fileno(capture), STDOUT_FILENO);
        dup2(fileno(capture), STDERR_FILENO);
        for (char *const *e = env; e && *e; e++) {
            char name[256];
            const char *eq = strchr(*e, '=');
            if (!eq || (size_t)(eq - *e) >= sizeof name) _exit(126);
            snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
            setenv(name, eq + 1, 1);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int raw = 0;
    const double deadline = sl_bt_now() + timeout_s;
    for (;;) {
        const pid_t w = waitpid(pid, &raw, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) break;
        if (sl_bt_now() > deadline) {
            *timed_out = true;
            kill(-pid, SIGKILL);
            waitpid(pid, &raw, 0);
            break;
        }
        const struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    fseek(capture, 0, SEEK_SET);
    const size_t got = fread(out, 1, cap - 1, capture);
    out[got] = '\0';
    fclose(capture);
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}
