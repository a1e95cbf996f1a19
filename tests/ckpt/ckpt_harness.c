/* Checkpoint test helpers (ckpt_harness.h). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "tests/ckpt/ckpt_harness.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
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

#include "common/json.h"
#include "common/param_file.h"
#include "shardlab/safetensors.h"

static char ch_out[256 * 1024];

sl_model_desc *ch_model(void) {
    const sl_gpt2_config cfg = {
        .n_layer = 2, .n_embd = 32, .n_head = 2, .block_size = 32, .vocab_size = 256};
    sl_model_desc *m = NULL;
    assert_int_equal(sl_model_desc_create_gpt2(&cfg, &m), SL_OK);
    return m;
}

const char *ch_output(void) {
    return ch_out;
}

static char *ch_bin(void) {
    static char fallback[] = SL_BINARY_DIR "/shardlab";
    char *b = getenv("SHARDLAB_BIN");
    return b && *b ? b : fallback;
}

static double ch_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int ch_run(char *const *argv, char *const *env, double timeout_s) {
    char path[] = "/tmp/shardlab-ckpt-test-XXXXXX";
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
    const double deadline = ch_now() + timeout_s;
    int raw = 0;
    bool timed_out = false;
    for (;;) {
        const pid_t w = waitpid(pid, &raw, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) break;
        if (ch_now() > deadline) {
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
    if (keep >= sizeof ch_out) keep = sizeof ch_out - 1;
    const ssize_t got = read(fd, ch_out, keep);
    ch_out[got > 0 ? (size_t)got : 0] = '\0';
    close(fd);
    if (timed_out)
        fail_msg("%s did not finish within %g s; output:\n%s", argv[0], timeout_s, ch_out);
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

static int ch_start(int W, const char *launch_flags, bool self, const char *args,
                    char *const *env) {
    static char text[4096], self_path[4096];
    snprintf(text, sizeof text, "%s", launch_flags ? launch_flags : "");
    char *argv[256];
    int a = 0;
    char np[16];
    snprintf(np, sizeof np, "%d", W);
    if (W > 1 || self) {
        argv[a++] = ch_bin();
        argv[a++] = "launch";
        argv[a++] = "--num_processes";
        argv[a++] = np;
        for (char *tok = strtok(text, " "); tok && a < 64; tok = strtok(NULL, " "))
            argv[a++] = tok;
    }
    if (self) {
        const ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
        self_path[n > 0 ? n : 0] = '\0';
        argv[a++] = self_path;
        argv[a++] = "--worker";
    } else {
        argv[a++] = ch_bin();
        argv[a++] = "train";
    }
    static char words[4096];
    snprintf(words, sizeof words, "%s", args);
    for (char *tok = strtok(words, " "); tok && a < 250; tok = strtok(NULL, " "))
        argv[a++] = tok;
    argv[a] = NULL;
    return ch_run(argv, env, 120.0);
}

int ch_train(int W, const char *launch_flags, const char *args, char *const *env) {
    return ch_start(W, launch_flags, false, args, env);
}

int ch_launch_self(int W, const char *launch_flags, const char *args) {
    return ch_start(W, launch_flags, true, args, NULL);
}

void ch_tmpdir(const char *tag, char *out, size_t cap) {
    snprintf(out, cap, "/tmp/shardlab-ckpt-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(out));
}

static int ch_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void ch_rmtree(const char *dir) {
    nftw(dir, ch_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

bool ch_exists(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat sb;
    return stat(path, &sb) == 0;
}

const char *ch_read_text(const char *dir, const char *name) {
    static char text[4096];
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    text[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return text;
    const size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    for (size_t i = n; i > 0 && text[i - 1] == '\n'; i--)
        text[i - 1] = '\0';
    return text;
}

int ch_read_trajectory(const char *dir, int *step, double *loss, int cap) {
    char path[4096];
    snprintf(path, sizeof path, "%s/trajectory.json", dir);
    sl_json *root = NULL;
    if (sl_json_parse_file(path, &root) != SL_OK) fail_msg("%s", sl_error_message());
    const sl_json *steps = sl_json_get(root, "steps");
    assert_non_null(steps);
    const int n = (int)sl_json_count(steps);
    assert_true(n <= cap);
    for (int i = 0; i < n; i++) {
        const sl_json *s = sl_json_at(steps, (size_t)i);
        step[i] = (int)sl_json_number(sl_json_get(s, "step"));
        loss[i] = sl_json_number(sl_json_get(s, "loss"));
    }
    sl_json_free(root);
    return n;
}

float **ch_read_params(const sl_model_desc *model, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sl_safetensors *st = NULL;
    if (sl_safetensors_open(path, &st) != SL_OK) fail_msg("%s", sl_error_message());
    float **a = sl_param_arrays_alloc(model);
    assert_non_null(a);
    for (int p = 0; p < model->n_params; p++) {
        if (sl_safetensors_read_f32(st, model->params[p].name, a[p],
                                    (size_t)model->params[p].numel) != SL_OK) {
            fail_msg("%s", sl_error_message());
        }
    }
    sl_safetensors_close(st);
    return a;
}

bool ch_params_equal(const sl_model_desc *model, float **a, float **b) {
    for (int p = 0; p < model->n_params; p++) {
        if (memcmp(a[p], b[p], (size_t)model->params[p].numel * sizeof(float)) != 0) return false;
    }
    return true;
}

double ch_params_divergence(const sl_model_desc *model, float **a, float **b) {
    double diff = 0.0, scale = 0.0;
    for (int p = 0; p < model->n_params; p++) {
        for (int64_t i = 0; i < model->params[p].numel; i++) {
            const double d = fabs((double)a[p][i] - (double)b[p][i]);
            if (!(d <= diff)) diff = d; /* a NaN wins */
            if (fabs((double)b[p][i]) > scale) scale = fabs((double)b[p][i]);
        }
    }
    return scale > 0.0 ? diff / scale : diff;
}
