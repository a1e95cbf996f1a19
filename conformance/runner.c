/* Runs of the shardlab binary as subprocesses, one at a time or N at once (runner.h). Every run
 * is its own process group, so a timeout kills mpirun and every rank together. */
#include "conformance/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shardlab/log.h"

#define SL_CONF_MAX_ARGS 256

static char sl_conf_bin_override[PATH_MAX];
static volatile sig_atomic_t sl_conf_stop;

void sl_conf_request_stop(void) {
    sl_conf_stop = 1;
}

const char *sl_conf_tool_name(sl_conf_tool t) {
    switch (t) {
    case SL_CONF_TOOL_REF: return "ref";
    case SL_CONF_TOOL_TRAIN: return "train";
    case SL_CONF_TOOL_EXPLAIN: return "explain";
    }
    return "?";
}

sl_conf_run_spec sl_conf_run_spec_default(void) {
    sl_conf_run_spec s;
    memset(&s, 0, sizeof s);
    s.tool = SL_CONF_TOOL_REF;
    s.world_size = 1;
    snprintf(s.model_flags, sizeof s.model_flags, "--model gpt-tiny");
    s.steps = 4;
    snprintf(s.data, sizeof s.data, "default");
    s.deterministic = true;
    s.timeout_s = 300.0;
    return s;
}

void sl_conf_set_shardlab_bin(const char *path) {
    snprintf(sl_conf_bin_override, sizeof sl_conf_bin_override, "%s", path ? path : "");
}

const char *sl_conf_shardlab_bin(void) {
    const char *env = getenv("SHARDLAB_BIN");
    if (env && *env) return env;
    if (sl_conf_bin_override[0]) return sl_conf_bin_override;
    static char beside[PATH_MAX];
    char self[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return "shardlab";
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    snprintf(beside, sizeof beside, "%.*s/shardlab", (int)(sizeof beside - 10), self);
    return beside;
}

/* ---- the command line ------------------------------------------------------------------- */

typedef struct sl_conf_argv {
    char *argv[SL_CONF_MAX_ARGS + 1];
    int n;
    char storage[4 * SL_CONF_FLAGS_MAX + 4 * SL_CONF_PATH_MAX + 512];
    size_t used;
    bool overflow;
} sl_conf_argv;

static void sl_conf_arg(sl_conf_argv *a, const char *word) {
    const size_t len = strlen(word) + 1;
    if (a->n >= SL_CONF_MAX_ARGS || a->used + len > sizeof a->storage) {
        a->overflow = true;
        return;
    }
    memcpy(a->storage + a->used, word, len);
    a->argv[a->n++] = a->storage + a->used;
    a->argv[a->n] = NULL;
    a->used += len;
}

static void sl_conf_words(sl_conf_argv *a, const char *text) {
    char word[SL_CONF_FLAGS_MAX];
    size_t w = 0;
    for (const char *p = text;; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\0') {
            if (w) {
                word[w] = '\0';
                sl_conf_arg(a, word);
                w = 0;
            }
            if (!*p) break;
        } else if (w + 1 < sizeof word) {
            word[w++] = *p;
        }
    }
}

static void sl_conf_argf(sl_conf_argv *a, const char *fmt, int v) {
    char buf[32];
    snprintf(buf, sizeof buf, fmt, v);
    sl_conf_arg(a, buf);
}

static sl_status sl_conf_build_argv(const sl_conf_run_spec *s, sl_conf_argv *a) {
    memset(a, 0, sizeof *a);
    const char *bin = sl_conf_shardlab_bin();
    if (s->tool == SL_CONF_TOOL_TRAIN && (s->world_size > 1 || s->via_launch)) {
        sl_conf_arg(a, bin);
        sl_conf_arg(a, "launch");
        sl_conf_arg(a, "--num_processes");
        sl_conf_argf(a, "%d", s->world_size);
    }
    sl_conf_arg(a, bin);
    sl_conf_arg(a, sl_conf_tool_name(s->tool));
    if (s->reverse_reduction_order) { /* `train` and `explain` reject it, naming it */
        sl_conf_arg(a, "--reverse_reduction_order");
    }
    if (s->tool != SL_CONF_TOOL_TRAIN) {
        sl_conf_arg(a, "--num_processes");
        sl_conf_argf(a, "%d", s->world_size);
    }
    sl_conf_words(a, s->plan_flags);
    if (s->config_file[0]) {
        sl_conf_arg(a, "--config_file");
        sl_conf_arg(a, s->config_file);
    }
    sl_conf_words(a, s->model_flags);
    if (s->deterministic) {
        sl_conf_arg(a, "--deterministic");
        sl_conf_arg(a, "true");
    }
    if (s->tool == SL_CONF_TOOL_EXPLAIN) {
        sl_conf_arg(a, "--max_steps");
        sl_conf_argf(a, "%d", s->steps);
        sl_conf_arg(a, "--json");
    } else {
        sl_conf_arg(a, "--steps");
        sl_conf_argf(a, "%d", s->steps);
        sl_conf_arg(a, "--data");
        sl_conf_arg(a, s->data[0] ? s->data : "default");
        sl_conf_words(a, s->extra_flags);
        if (s->init_from[0]) {
            sl_conf_arg(a, "--init_from");
            sl_conf_arg(a, s->init_from);
        }
        sl_conf_arg(a, "--out");
        sl_conf_arg(a, s->out_dir);
        sl_conf_arg(a, "--quiet");
    }
    if (a->overflow) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "conformance run in %s: the command line exceeds %d arguments or the "
                            "argument storage; shorten plan_flags/extra_flags",
                            s->out_dir, SL_CONF_MAX_ARGS);
    }
    return SL_OK;
}

void sl_conf_run_spec_describe(const sl_conf_run_spec *s, char *buf, size_t cap) {
    sl_conf_argv a;
    buf[0] = '\0';
    if (sl_conf_build_argv(s, &a) != SL_OK) {
        snprintf(buf, cap, "(command line too long)");
        return;
    }
    size_t used = 0;
    for (int i = 0; i < a.n && used + 1 < cap; i++) {
        const int w = snprintf(buf + used, cap - used, "%s%s", i ? " " : "", a.argv[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

/* ---- processes -------------------------------------------------------------------------- */

static double sl_conf_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct sl_conf_job {
    int index; /* into specs / results */
    pid_t pid;
    double start, deadline;
    bool killed;
} sl_conf_job;

static sl_status sl_conf_mkdirs(const char *dir) {
    char path[SL_CONF_PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1;; p++) {
        const char c = *p;
        if (c != '/' && c != '\0') continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            return sl_error_set(SL_ERR_IO, "conformance: cannot create the run directory %s: %s",
                                path, strerror(errno));
        }
        *p = c;
        if (!c) break;
    }
    return SL_OK;
}

static void sl_conf_result_init(sl_conf_result *r, const sl_conf_run_spec *s) {
    memset(r, 0, sizeof *r);
    r->status = SL_ERR_INTERNAL;
    r->param_dtype = r->master_dtype = SL_DTYPE_F32;
    snprintf(r->log_path, sizeof r->log_path, "%.500s/run.log", s->out_dir);
}

static void sl_conf_result_fail(sl_conf_result *r, sl_status code, const char *what) {
    r->status = code;
    snprintf(r->error, sizeof r->error, "%s", what);
}

/* Starts the process of spec; its stdout and stderr go to OUT/run.log (explain: stdout to
 * OUT/explain.json). */
static sl_status sl_conf_start(const sl_conf_run_spec *s, sl_conf_result *r, pid_t *pid) {
    if (!s->out_dir[0]) {
        return sl_error_set(SL_ERR_INVALID_ARG, "conformance run: out_dir is empty; every run "
                                                "needs its own directory");
    }
    SL_TRY(sl_conf_mkdirs(s->out_dir));
    sl_conf_argv a;
    SL_TRY(sl_conf_build_argv(s, &a));
    const int log = open(r->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (log < 0) {
        return sl_error_set(SL_ERR_IO, "conformance: cannot create %s: %s", r->log_path,
                            strerror(errno));
    }
    char line[4096];
    sl_conf_run_spec_describe(s, line, sizeof line);
    dprintf(log, "$ %s\n", line);
    int out = log;
    if (s->tool == SL_CONF_TOOL_EXPLAIN) {
        char path[SL_CONF_PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/explain.json", s->out_dir);
        out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (out < 0) {
            close(log);
            return sl_error_set(SL_ERR_IO, "conformance: cannot create %s: %s", path,
                                strerror(errno));
        }
    }
    fflush(NULL);
    const pid_t child = fork();
    if (child < 0) {
        const int e = errno;
        close(log);
        if (out != log) close(out);
        return sl_error_set(SL_ERR_IO, "conformance: fork failed for the run in %s: %s", s->out_dir,
                            strerror(e));
    }
    if (child == 0) {
        setpgid(0, 0);
        dup2(out, STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
        const int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, STDIN_FILENO);
        execv(a.argv[0], a.argv);
        dprintf(STDERR_FILENO, "conformance: cannot execute %s: %s\n", a.argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(child, child); /* also here: a kill right after fork must reach the group */
    close(log);
    if (out != log) close(out);
    *pid = child;
    return SL_OK;
}

/* After the process ended: fills exit status and loads the files. */
static void sl_conf_finish(const sl_conf_run_spec *s, const sl_conf_job *j, int raw,
                           sl_conf_result *r) {
    r->seconds = sl_conf_now() - j->start;
    r->timed_out = j->killed;
    r->exit_status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    char what[1024];
    if (j->killed) {
        snprintf(
            what, sizeof what,
            "%s run in %.400s did not finish within %.0f s and was killed; its output is in %.400s",
            sl_conf_tool_name(s->tool), s->out_dir, s->timeout_s, r->log_path);
        sl_conf_result_fail(r, SL_ERR_IO, what);
        return;
    }
    if (r->exit_status != 0) {
        snprintf(what, sizeof what,
                 "%s run in %.400s exited with status %d; its output is in %.400s",
                 sl_conf_tool_name(s->tool), s->out_dir, r->exit_status, r->log_path);
        sl_conf_result_fail(r, SL_ERR_IO, what);
        return;
    }
    sl_conf_result loaded;
    const sl_status st = sl_conf_result_load(s->tool, s->out_dir, &loaded);
    loaded.exit_status = r->exit_status;
    loaded.seconds = r->seconds;
    memcpy(loaded.log_path, r->log_path, sizeof loaded.log_path);
    *r = loaded;
    if (st != SL_OK) sl_conf_result_fail(r, st, sl_error_message());
}

sl_status sl_conf_run_all(const sl_conf_run_spec *specs, int n, int jobs, sl_conf_result *results,
                          sl_conf_progress_fn progress, void *ctx) {
    if (jobs < 1) jobs = 1;
    for (int i = 0; i < n; i++)
        sl_conf_result_init(&results[i], &specs[i]);
    sl_conf_job *running = calloc((size_t)jobs, sizeof *running);
    if (!running) return sl_error_set(SL_ERR_OOM, "conformance: out of memory (job table)");
    int next = 0, n_running = 0, done = 0;
    sl_conf_stop = 0;
    while (done < n && !sl_conf_stop) {
        while (n_running < jobs && next < n) {
            const int i = next++;
            pid_t pid = 0;
            if (sl_conf_start(&specs[i], &results[i], &pid) != SL_OK) {
                sl_conf_result_fail(&results[i], SL_ERR_IO, sl_error_message());
                done++;
                if (progress) progress(done, n, &specs[i], &results[i], ctx);
                continue;
            }
            const double now = sl_conf_now();
            running[n_running++] = (sl_conf_job){
                .index = i, .pid = pid, .start = now, .deadline = now + specs[i].timeout_s};
        }
        bool reaped = false;
        for (int k = 0; k < n_running; k++) {
            sl_conf_job *j = &running[k];
            int raw = 0;
            const pid_t w = waitpid(j->pid, &raw, WNOHANG);
            if (w == 0) {
                if (!j->killed && sl_conf_now() > j->deadline) {
                    j->killed = true;
                    kill(-j->pid, SIGKILL);
                }
                continue;
            }
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) raw = 0x7f00; /* lost child: reported as exit status 127 */
            kill(-j->pid, SIGKILL);  /* ranks left behind by a dead launcher */
            sl_conf_finish(&specs[j->index], j, raw, &results[j->index]);
            done++;
            if (progress) progress(done, n, &specs[j->index], &results[j->index], ctx);
            running[k--] = running[--n_running];
            reaped = true;
        }
        if (!reaped && n_running) {
            const struct timespec pause = {0, 20 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    if (sl_conf_stop) {
        for (int k = 0; k < n_running; k++) {
            kill(-running[k].pid, SIGKILL);
            waitpid(running[k].pid, NULL, 0);
        }
        for (int i = 0; i < n; i++) {
            if (results[i].status == SL_ERR_INTERNAL && !results[i].error[0])
                sl_conf_result_fail(&results[i], SL_ERR_IO, "interrupted");
        }
        free(running);
        return sl_error_set(SL_ERR_IO, "conformance: interrupted; %d of %d runs had finished", done,
                            n);
    }
    free(running);
    return SL_OK;
}

sl_status sl_conf_run(const sl_conf_run_spec *spec, sl_conf_result *out) {
    const sl_status st = sl_conf_run_all(spec, 1, 1, out, NULL, NULL);
    if (st != SL_OK) return st;
    if (out->status != SL_OK) return sl_error_set(out->status, "%s", out->error);
    return SL_OK;
}
