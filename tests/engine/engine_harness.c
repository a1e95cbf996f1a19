/* Engine test helpers (engine_harness.h). */
#include "tests/engine/engine_harness.h"

#include <errno.h>
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

#include "conformance/divergence.h"

sl_model_desc *eh_model(void) {
    const sl_gpt2_config cfg = {
        .n_layer = 2, .n_embd = 32, .n_head = 2, .block_size = 32, .vocab_size = 256};
    sl_model_desc *m = NULL;
    assert_int_equal(sl_model_desc_create_gpt2(&cfg, &m), SL_OK);
    return m;
}

int eh_split(const char *text, char *storage, char **argv, int cap) {
    strcpy(storage, text);
    int n = 0;
    for (char *tok = strtok(storage, " "); tok && n < cap - 1; tok = strtok(NULL, " "))
        argv[n++] = tok;
    argv[n] = NULL;
    return n;
}

sl_plan *eh_plan(const sl_model_desc *model, const char *flags) {
    char storage[2048];
    char *argv[128];
    const int argc = eh_split(flags, storage, argv, 128);
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    char *rest[128];
    int n_rest = 0;
    sl_status st = sl_config_parse_args(cfg, argc, argv, rest, &n_rest);
    sl_plan *plan = NULL;
    if (st == SL_OK && n_rest) st = sl_error_set(SL_ERR_CONFIG, "unparsed flag %s", rest[0]);
    if (st == SL_OK) st = sl_plan_compile(cfg, model, &plan);
    sl_config_destroy(cfg);
    if (st != SL_OK) fail_msg("plan '%s': %s", flags, sl_error_message());
    return plan;
}

static double eh_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int eh_run(char *const *argv, char *const *env, double timeout_s, char *out, size_t cap) {
    char path[] = "/tmp/shardlab-engine-test-XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(NULL);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0); /* a timeout kills mpirun and every rank at once */
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
#ifdef __SANITIZE_ADDRESS__
        /* the ranks' leak check must see past Open MPI (tests/comm/lsan_mpi.supp) */
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
        execv(argv[0], argv);
        _exit(127);
    }
    const double deadline = eh_now() + timeout_s;
    int raw = 0;
    bool timed_out = false;
    for (;;) {
        const pid_t w = waitpid(pid, &raw, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) break;
        if (eh_now() > deadline) {
            timed_out = true;
            kill(-pid, SIGKILL);
            waitpid(pid, &raw, 0);
            break;
        }
        const struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    const off_t len = lseek(fd, 0, SEEK_END);
    lseek(fd, 0, SEEK_SET);
    size_t keep = len > 0 ? (size_t)len : 0;
    if (keep >= cap) keep = cap - 1;
    const ssize_t got = read(fd, out, keep);
    out[got > 0 ? (size_t)got : 0] = '\0';
    close(fd);
    if (timed_out) fail_msg("%s did not finish within %g s; output:\n%s", argv[0], timeout_s, out);
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

char *eh_shardlab_bin(void) {
    static char fallback[] = SL_BINARY_DIR "/shardlab";
    char *b = getenv("SHARDLAB_BIN");
    return b && *b ? b : fallback;
}

char *eh_self(void) {
    static char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    return self;
}

void eh_tmpdir(const char *tag, char *out, size_t cap) {
    snprintf(out, cap, "/tmp/shardlab-engine-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(out));
}

void eh_rmdir(const char *dir) {
    static const char *const names[] = {"init.safetensors",        "final.safetensors",
                                        "grads_step1.safetensors", "batch_step1.safetensors",
                                        "trajectory.json",         "metrics.jsonl",
                                        "init_ulp.safetensors"};
    char path[4096];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

double eh_series_divergence(const double *a, const double *b, int n) {
    return sl_conf_series_divergence(a, b, n);
}
