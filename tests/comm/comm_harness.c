#include "tests/comm/comm_harness.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shardlab/plan.h"

/* splitmix64 of a combined counter: any process can compute any rank's inputs. */
static uint64_t sl_test_mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float sl_test_input(uint64_t seed, int rank, int case_id, size_t i, sl_dtype dt) {
    const uint64_t h = sl_test_mix(
        seed ^ sl_test_mix(((uint64_t)rank << 48) ^ ((uint64_t)case_id << 32) ^ (uint64_t)i));
    const double u = (double)(h >> 11) / 9007199254740992.0; /* [0, 1) */
    const int e = (int)((h >> 3) % 9) - 4;
    return sl_round_to((float)ldexp(16.0 * u - 8.0, e), dt);
}

void sl_test_fill(void *buf, size_t n, sl_dtype dt, uint64_t seed, int rank, int case_id,
                  size_t first) {
    for (size_t i = 0; i < n; i++) {
        const float v = sl_test_input(seed, rank, case_id, first + i, dt);
        if (dt == SL_DTYPE_F32) {
            ((float *)buf)[i] = v;
        } else {
            sl_convert_from_f32((uint16_t *)buf + i, dt, &v, 1);
        }
    }
}

float sl_test_get(const void *buf, size_t i, sl_dtype dt) {
    if (dt == SL_DTYPE_F32) return ((const float *)buf)[i];
    float v;
    sl_convert_to_f32(&v, (const uint16_t *)buf + i, dt, 1);
    return v;
}

/* The pre and post operations of the rule; 0 = none. */
static void sl_test_divide(const sl_comm_opts *o, float *pre, float *post_div, float *post_mul) {
    *pre = *post_div = *post_mul = 0.0f;
    const int w = o->divide_world;
    if (w > 0 && o->divide == SL_DIVIDE_PRE_POST_POW2) {
        double a, b;
        sl_divide_factors_pow2(w, &a, &b);
        if (a != 1.0) *pre = (float)a;
        if (b != 1.0) *post_div = (float)b;
    } else if (w > 0 && o->divide == SL_DIVIDE_AVG) {
        *post_div = (float)w;
    } else if (w > 0 && o->divide == SL_DIVIDE_PRE) {
        *pre = (float)w;
    } else if (w > 0 && o->divide == SL_DIVIDE_POST) {
        *post_mul = (float)(1.0 / w);
    }
    if (o->skip_pre_divide) *pre = 0.0f;
    if (o->skip_post_divide) *post_div = *post_mul = 0.0f;
}

static float sl_test_post(float s, sl_dtype dt, float post_div, float post_mul) {
    if (post_div != 0.0f) return sl_round_to(s / post_div, dt);
    if (post_mul != 0.0f) return sl_round_to(s * post_mul, dt);
    return s;
}

float sl_test_reduce_ref(const float *x, int n, sl_dtype dt, const sl_comm_opts *o) {
    return sl_test_reduce_hybrid_ref(x, n, n, dt, o);
}

float sl_test_reduce_hybrid_ref(const float *x, int n, int g, sl_dtype dt, const sl_comm_opts *o) {
    float pre, post_div, post_mul;
    sl_test_divide(o, &pre, &post_div, &post_mul);
    float total = 0.0f;
    for (int rep = 0; rep < n / g; rep++) {
        float sum = 0.0f;
        for (int j = 0; j < g; j++) {
            float v = x[rep * g + j];
            if (pre != 0.0f) v = sl_round_to(v / pre, dt);
            sum = j == 0 ? v : sl_round_to(sum + v, dt);
        }
        total = rep == 0 ? sum : sl_round_to(total + sum, dt);
    }
    return sl_test_post(total, dt, post_div, post_mul);
}

static double sl_test_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int sl_test_start(sl_test_proc *p, char *const *argv, char *const *env, double timeout_s) {
    char path[] = "/tmp/shardlab-comm-test-XXXXXX";
    p->fd = mkstemp(path);
    if (p->fd < 0) return -1;
    unlink(path);
    p->deadline = sl_test_now() + timeout_s;
    fflush(NULL);
    p->pid = fork();
    if (p->pid == 0) {
        setpgid(0, 0); /* so that a timeout can kill mpirun and every rank at once */
        dup2(p->fd, STDOUT_FILENO);
        dup2(p->fd, STDERR_FILENO);
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
    return p->pid > 0 ? 0 : -1;
}

int sl_test_finish(sl_test_proc *p, char *out, size_t cap, bool *timed_out) {
    *timed_out = false;
    int raw = 0;
    for (;;) {
        const pid_t w = waitpid(p->pid, &raw, WNOHANG);
        if (w == p->pid) break;
        if (w < 0 && errno != EINTR) break;
        if (sl_test_now() > p->deadline) {
            *timed_out = true;
            kill(-p->pid, SIGKILL);
            waitpid(p->pid, &raw, 0);
            break;
        }
        const struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    const off_t len = lseek(p->fd, 0, SEEK_END);
    lseek(p->fd, 0, SEEK_SET);
    size_t keep = len > 0 ? (size_t)len : 0;
    if (keep >= cap) keep = cap - 1;
    const ssize_t got = read(p->fd, out, keep);
    out[got > 0 ? (size_t)got : 0] = '\0';
    close(p->fd);
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

bool sl_test_await_output(const sl_test_proc *p, const char *needle, double timeout_s) {
    const double deadline = sl_test_now() + timeout_s;
    static char buf[64 * 1024];
    do {
        const ssize_t got = pread(p->fd, buf, sizeof buf - 1, 0);
        buf[got > 0 ? (size_t)got : 0] = '\0';
        if (strstr(buf, needle)) return true;
        const struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    } while (sl_test_now() < deadline);
    return false;
}

int sl_test_run(char *const *argv, char *const *env, double timeout_s, char *out, size_t cap,
                bool *timed_out) {
    sl_test_proc p;
    *timed_out = false;
    if (sl_test_start(&p, argv, env, timeout_s) != 0) return -1;
    return sl_test_finish(&p, out, cap, timed_out);
}

char *sl_test_shardlab_bin(void) {
    static char fallback[] = SL_BINARY_DIR "/shardlab";
    char *b = getenv("SHARDLAB_BIN");
    return b && *b ? b : fallback;
}

char *sl_test_self(void) {
    static char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    return self;
}
