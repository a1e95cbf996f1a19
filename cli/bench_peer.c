/* The PyTorch eager peer of `shardlab bench --suite e2e`: bench/peer/gpt2_peer.py trains the same
 * GPT-2 shapes as the engine's single-rank runs with the same thread count and writes Google
 * Benchmark JSON, merged into the results as peer/torch_eager/... runs. It needs a Python whose
 * `import torch` works; without one the rows are skipped with a notice, never an error. */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/bench_cli.h"

extern char **environ;

/* Runs argv (PATH searched), stdout and stderr to /dev/null when quiet; -1 when it cannot
 * start. */
static int sl_peer_spawn(char *const *argv, bool quiet) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (quiet) {
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid;
    const int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0) return -1;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* $SHARDLAB_PYTHON, else python3 on PATH, else Debian's /usr/bin/python3 (where
 * `apt-get install python3-torch` puts torch even when PATH's python3 is another one). */
static const char *sl_peer_python(void) {
    const char *env = getenv("SHARDLAB_PYTHON");
    const char *candidates[] = {env && *env ? env : NULL, "python3", "/usr/bin/python3"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (!candidates[i]) continue;
        char *argv[] = {(char *)candidates[i], "-c", "import torch", NULL};
        if (sl_peer_spawn(argv, true) == 0) return candidates[i];
        if (i == 0) return NULL; /* an explicit choice is not second-guessed */
    }
    return NULL;
}

static bool sl_peer_is_file(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

/* $SHARDLAB_PEER_SCRIPT, else bench/peer/gpt2_peer.py beside the build directory holding this
 * executable (build/shardlab -> bench/peer/...), else under the current directory. */
static bool sl_peer_script(char *buf, size_t cap) {
    const char *env = getenv("SHARDLAB_PEER_SCRIPT");
    if (env && *env) {
        snprintf(buf, cap, "%s", env);
        return sl_peer_is_file(buf);
    }
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) *slash = '\0';
        snprintf(buf, cap, "%s/../bench/peer/gpt2_peer.py", self);
        if (sl_peer_is_file(buf)) return true;
    }
    snprintf(buf, cap, "bench/peer/gpt2_peer.py");
    return sl_peer_is_file(buf);
}

/* Whether --filter (extended regex; a leading '-' excludes) selects any peer run, so that a
 * filtered bench run does not start Python for nothing. */
static bool sl_peer_selected(const sl_bench_peer_opts *o) {
    if (!o->filter || !*o->filter) return true;
    const bool negate = o->filter[0] == '-';
    regex_t re;
    if (regcomp(&re, o->filter + negate, REG_EXTENDED | REG_NOSUB) != 0) return true;
    static const char *const dtypes[] = {"fp32", "bf16"};
    bool any = false;
    char models[256];
    snprintf(models, sizeof models, "%s", o->models);
    for (char *save = NULL, *m = strtok_r(models, ",", &save); m && !any;
         m = strtok_r(NULL, ",", &save)) {
        for (int d = 0; d < 2 && !any; d++) {
            char name[160];
            snprintf(name, sizeof name, "peer/torch_eager/%s/%s/W:1/manual_time", m, dtypes[d]);
            any = (regexec(&re, name, 0, NULL, 0) == 0) != negate;
        }
    }
    regfree(&re);
    return any;
}

sl_status sl_bench_peer_run(const sl_bench_peer_opts *o, const char *out, bool *ran) {
    *ran = false;
    if (!sl_peer_selected(o)) return SL_OK;
    char script[4200];
    if (!sl_peer_script(script, sizeof script)) {
        fprintf(stderr,
                "shardlab: bench: note: PyTorch peer rows skipped: %s not found (run from the "
                "source tree, or set SHARDLAB_PEER_SCRIPT)\n",
                script);
        return SL_OK;
    }
    const char *python = sl_peer_python();
    if (!python) {
        fprintf(stderr,
                "shardlab: bench: note: PyTorch peer rows skipped: `python3 -c \"import torch\"` "
                "fails (install it with `ci/deps.sh --with-torch`; SHARDLAB_PYTHON picks the "
                "interpreter)\n");
        return SL_OK;
    }
    char threads[16], reps[16], peak[32];
    snprintf(threads, sizeof threads, "%d", o->threads);
    snprintf(reps, sizeof reps, "%d", o->repetitions);
    snprintf(peak, sizeof peak, "%.17g", o->peak_gflops);
    char *argv[24] = {(char *)python,  script,      "--models", (char *)o->models, "--dtypes",
                      "fp32,bf16",     "--threads", threads,    "--repetitions",   reps,
                      "--peak_gflops", peak,        "--out",    (char *)out};
    int k = 14;
    if (o->quick) argv[k++] = "--quick";
    if (o->filter) {
        argv[k++] = "--filter";
        argv[k++] = (char *)o->filter;
    }
    argv[k] = NULL;
    fprintf(stderr, "shardlab: bench: PyTorch eager peer (%s %s, %s threads)\n", python, script,
            threads);
    fflush(NULL);
    const int status = sl_peer_spawn(argv, false);
    if (status != 0) {
        return sl_error_set(SL_ERR_IO,
                            "bench: the PyTorch peer %s failed (exit status %d; its messages are "
                            "above)",
                            script, status);
    }
    *ran = true;
    return SL_OK;
}
