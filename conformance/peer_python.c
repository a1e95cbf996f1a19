/* Finding and running the PyTorch peers (peer_python.h). */
#include "conformance/peer_python.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conformance/runner.h"

extern char **environ;

static double sl_peer_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int sl_peer_spawn(char *const *argv, const char *log_path, double timeout_s, bool *timed_out) {
    if (timed_out) *timed_out = false;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    /* its own group: a timeout reaches the interpreter's children too */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    if (log_path) {
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path, O_WRONLY | O_CREAT | O_TRUNC,
                                         0666);
        posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    }
    fflush(NULL);
    pid_t pid;
    const int e = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (e != 0) return -1;
    const double deadline = timeout_s > 0.0 ? sl_peer_now() + timeout_s : 0.0;
    int status = 0;
    for (;;) {
        const pid_t w = waitpid(pid, &status, timeout_s > 0.0 ? WNOHANG : 0);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) return -1;
        if (w == 0 && sl_peer_now() > deadline) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            if (timed_out) *timed_out = true;
            break;
        }
        if (w == 0) {
            const struct timespec pause = {0, 20 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool sl_peer_python_find(char *python, size_t cap, char *why, size_t why_cap) {
    const char *env = getenv("SHARDLAB_PYTHON");
    const char *candidates[] = {env && *env ? env : NULL, "python3", "/usr/bin/python3"};
    bool any_ran = false;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (!candidates[i]) continue;
        char *argv[] = {(char *)candidates[i], "-c", "import torch", NULL};
        const int st = sl_peer_spawn(argv, "/dev/null", 120.0, NULL);
        if (st == 0) {
            snprintf(python, cap, "%s", candidates[i]);
            return true;
        }
        any_ran = any_ran || (st != -1 && st != 127);
        if (i == 0) {
            snprintf(why, why_cap,
                     "SHARDLAB_PYTHON=%s cannot %s (point it at a Python that can import torch, "
                     "e.g. the one `ci/deps.sh --with-torch` installs, or unset it)",
                     env, st == -1 || st == 127 ? "be run" : "import torch");
            return false;
        }
    }
    snprintf(why, why_cap, "%s",
             any_ran ? "no python3 can import torch (install it with `ci/deps.sh --with-torch`; "
                       "SHARDLAB_PYTHON picks the interpreter)"
                     : "python3 is not installed (the PyTorch peer needs python3 with torch; "
                       "SHARDLAB_PYTHON picks the interpreter)");
    return false;
}

static bool sl_peer_is_file(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

/* bench/peer/<file> beside the directory holding exe: build/shardlab -> build/../bench/peer. */
static bool sl_peer_beside(const char *exe, const char *file, char *path, size_t cap) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", exe);
    char *slash = strrchr(dir, '/');
    if (!slash) return false;
    *slash = '\0';
    snprintf(path, cap, "%s/../bench/peer/%s", dir, file);
    return sl_peer_is_file(path);
}

bool sl_peer_script_find(const char *file, const char *env, char *path, size_t cap) {
    const char *given = env ? getenv(env) : NULL;
    if (given && *given) {
        snprintf(path, cap, "%s", given);
        return sl_peer_is_file(path);
    }
    if (sl_peer_beside(sl_conf_shardlab_bin(), file, path, cap)) return true;
    char self[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        if (sl_peer_beside(self, file, path, cap)) return true;
    }
    snprintf(path, cap, "bench/peer/%s", file);
    return sl_peer_is_file(path);
}
