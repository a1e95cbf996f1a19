/* The mpirun command `shardlab launch` runs, and the environment it adds for every rank.
 *
 *   mpirun -n W [--allow-run-as-root] --oversubscribe --bind-to none
 *          [--hostfile H [--npernode W/M] | --host ADDR:W/M,...] -x NAME ...
 *          SHARDLAB launch --rank_exec -- PROGRAM ARGS
 *
 * --allow-run-as-root: Open MPI refuses to start as root without it (containers run as root).
 * --oversubscribe: lets W exceed the cores; Open MPI only switches ranks to yield-when-idle when
 *   a node really is oversubscribed, so passing it always costs nothing (bench/NOTES.md).
 * --bind-to none: ranks share the cores with their OpenMP threads; OMP_NUM_THREADS is set to
 *   cores / (ranks per machine), at least 1, unless the user set it; and libgomp's spin before
 *   a thread sleeps at a barrier is cut to GOMP_SPINCOUNT=10000 unless the user set it or
 *   OMP_WAIT_POLICY: the default long spin takes the core a descheduled partner thread needs
 *   when anything else runs on the machine (bench/NOTES.md: 429 tokens/s with the default spin
 *   under load, 1,024-1,322 with the short one; 2,239 on an idle machine, where passive waiting
 *   gave 1,841).
 * -x: mpirun copies the named variables to ranks on other machines (locally they are inherited):
 *   the resolved plan (SHARDLAB_CONFIG_*), every other SHARDLAB_* variable, OMP_NUM_THREADS,
 *   GOMP_SPINCOUNT, OMP_WAIT_POLICY.
 * The rank wrapper (launch_exec.c) reports which rank died and how. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/launch.h"
#include "common/config_internal.h"
#include "shardlab/config_env.h"

extern char **environ;

sl_status sl_strv_push(sl_strv *s, const char *text) {
    if (s->n + 2 > s->cap) {
        const size_t cap = s->cap ? 2 * s->cap : 16;
        char **grown = realloc(s->v, cap * sizeof *grown);
        if (!grown) return sl_error_set(SL_ERR_OOM, "out of memory building the launch command");
        s->v = grown;
        s->cap = cap;
    }
    const size_t len = strlen(text) + 1;
    s->v[s->n] = malloc(len);
    if (!s->v[s->n]) return sl_error_set(SL_ERR_OOM, "out of memory building the launch command");
    memcpy(s->v[s->n++], text, len);
    s->v[s->n] = NULL;
    return SL_OK;
}

sl_status sl_strv_pushf(sl_strv *s, const char *fmt, ...) {
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) {
        return sl_error_set(SL_ERR_INVALID_ARG, "launch: an argument of %d characters is too long",
                            n);
    }
    return sl_strv_push(s, buf);
}

void sl_strv_free(sl_strv *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    *s = (sl_strv){0};
}

sl_status sl_strv_setenv(sl_strv *s, const char *name, const char *value) {
    const size_t len = strlen(name);
    for (size_t i = 0; i < s->n; i++) {
        if (strncmp(s->v[i], name, len) != 0 || s->v[i][len] != '=') continue;
        char *entry = malloc(len + strlen(value) + 2);
        if (!entry) return sl_error_set(SL_ERR_OOM, "out of memory building the launch command");
        sprintf(entry, "%s=%s", name, value);
        free(s->v[i]);
        s->v[i] = entry;
        return SL_OK;
    }
    return sl_strv_pushf(s, "%s=%s", name, value);
}

static bool sl_is_executable_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

void sl_launch_which(const char *name, char *out, size_t cap) {
    out[0] = '\0';
    if (strchr(name, '/')) {
        if (sl_is_executable_file(name)) snprintf(out, cap, "%s", name);
        return;
    }
    const char *path = getenv("PATH");
    for (const char *p = path ? path : ""; *p;) {
        const char *end = strchr(p, ':');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        char cand[4096];
        if (snprintf(cand, sizeof cand, "%.*s/%s", (int)len, len ? p : ".", name) <
                (int)sizeof cand &&
            sl_is_executable_file(cand)) {
            snprintf(out, cap, "%s", cand);
            return;
        }
        p += len + (end ? 1 : 0);
    }
}

sl_status sl_launch_check_program(const char *program) {
    char found[4096];
    sl_launch_which(program, found, sizeof found);
    if (found[0]) return SL_OK;
    if (strchr(program, '/')) {
        struct stat st;
        const char *why = stat(program, &st) != 0 ? "does not exist"
                          : S_ISDIR(st.st_mode)   ? "is a directory"
                                                  : "is not executable";
        return sl_error_set(SL_ERR_CONFIG, "launch: the program '%s' %s; nothing was started",
                            program, why);
    }
    return sl_error_set(SL_ERR_CONFIG,
                        "launch: the program '%s' was not found on $PATH; give its path (e.g. "
                        "./%s) — nothing was started",
                        program, program);
}

/* Ranks of this launch on one machine. */
static int sl_launch_per_machine(const sl_launch *l) {
    return l->machines > 1 ? l->world / l->machines : l->world;
}

/* What the ranks get: the launcher's configuration without the launch keys (where processes
 * run is the launcher's business), config file names made absolute (ranks on other machines may
 * start elsewhere). */
static sl_status sl_launch_rank_config(const sl_config *cfg, sl_config **out) {
    SL_TRY(sl_config_clone(cfg, out));
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
    for (size_t i = sl_config_size(*out); i-- > 0;) {
        const char *value = NULL;
        const sl_source *src = NULL;
        const char *key = sl_config_entry(*out, i, &value, &src);
        if (sl_config_key_family(sl_config_key_find(key)) == SL_FAMILY_LAUNCH) {
            sl_config_unset(*out, key);
            continue;
        }
        const bool file_key = !strcmp(key, "config_file") || !strcmp(key, "deepspeed_config_file");
        if (file_key && value[0] != '/' && cwd[0]) {
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", cwd, value);
            const sl_source same = *src;
            SL_TRY(sl_config_set(*out, key, path, &same));
        }
    }
    return SL_OK;
}

static sl_status sl_launch_build_env(const sl_launch *l, sl_strv *env) {
    sl_config *ranks = NULL;
    char **cfg_env = NULL;
    sl_status st = sl_launch_rank_config(l->cfg, &ranks);
    if (st == SL_OK) st = sl_config_export_env(ranks, &cfg_env);
    sl_config_destroy(ranks);
    for (size_t i = 0; st == SL_OK && cfg_env[i]; i++)
        st = sl_strv_push(env, cfg_env[i]);
    sl_config_env_free(cfg_env);
    SL_TRY(st);
    if (l->debug) SL_TRY(sl_strv_push(env, "SHARDLAB_COMM_DEBUG=1"));
    /* torchrun's TORCHELASTIC_RESTART_COUNT and TORCHELASTIC_MAX_RESTARTS, under our prefix;
     * sl_launch_supervise raises the count on each restart */
    SL_TRY(sl_strv_push(env, "SHARDLAB_RESTART_COUNT=0"));
    SL_TRY(sl_strv_pushf(env, "SHARDLAB_MAX_RESTARTS=%d", l->max_restarts));
    if (!getenv("OMP_NUM_THREADS")) {
        const long cores = sysconf(_SC_NPROCESSORS_ONLN);
        const long per = sl_launch_per_machine(l);
        const long threads = cores > per ? cores / per : 1;
        SL_TRY(sl_strv_pushf(env, "OMP_NUM_THREADS=%ld", threads));
    }
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
        SL_TRY(sl_strv_push(env, "GOMP_SPINCOUNT=10000"));
    }
    return SL_OK;
}

static bool sl_strv_has_name(const sl_strv *s, size_t first, const char *name, size_t len) {
    for (size_t i = first; i < s->n; i++) {
        if (strlen(s->v[i]) == len && !strncmp(s->v[i], name, len)) return true;
    }
    return false;
}

/* -x NAME for each added variable, each SHARDLAB_* variable of the launcher's environment and a
 * user-set OMP_NUM_THREADS, OMP_WAIT_POLICY or GOMP_SPINCOUNT. */
static sl_status sl_launch_push_exports(const sl_strv *env, sl_strv *argv) {
    const size_t first = argv->n;
    for (size_t i = 0; i < env->n; i++) {
        const size_t len = (size_t)(strchr(env->v[i], '=') - env->v[i]);
        if (sl_strv_has_name(argv, first, env->v[i], len)) continue;
        SL_TRY(sl_strv_push(argv, "-x"));
        SL_TRY(sl_strv_pushf(argv, "%.*s", (int)len, env->v[i]));
    }
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        const size_t len = (size_t)(eq - *e);
        const bool ours = !strncmp(*e, "SHARDLAB_", 9) || !strncmp(*e, "OMP_NUM_THREADS=", 16) ||
                          !strncmp(*e, "OMP_WAIT_POLICY=", 16) ||
                          !strncmp(*e, "GOMP_SPINCOUNT=", 15);
        if (!ours || sl_strv_has_name(argv, first, *e, len)) continue;
        SL_TRY(sl_strv_push(argv, "-x"));
        SL_TRY(sl_strv_pushf(argv, "%.*s", (int)len, *e));
    }
    return SL_OK;
}

sl_status sl_launch_build(const sl_launch *l, sl_strv *env, sl_strv *argv) {
    SL_TRY(sl_launch_build_env(l, env));
    char mpirun[4096];
    sl_launch_which("mpirun", mpirun, sizeof mpirun);
    if (!mpirun[0] && !l->dry_run) {
        return sl_error_set(SL_ERR_CONFIG, "launch: mpirun was not found on $PATH; install Open "
                                           "MPI (ci/deps.sh installs openmpi-bin)");
    }
    SL_TRY(sl_strv_push(argv, mpirun[0] ? mpirun : "mpirun"));
    SL_TRY(sl_strv_push(argv, "-n"));
    SL_TRY(sl_strv_pushf(argv, "%d", l->world));
    if (geteuid() == 0) SL_TRY(sl_strv_push(argv, "--allow-run-as-root"));
    SL_TRY(sl_strv_push(argv, "--oversubscribe"));
    SL_TRY(sl_strv_push(argv, "--bind-to"));
    SL_TRY(sl_strv_push(argv, "none"));
    const int per = sl_launch_per_machine(l);
    if (l->hostfile) {
        SL_TRY(sl_strv_push(argv, "--hostfile"));
        SL_TRY(sl_strv_push(argv, l->hostfile));
        if (l->machines > 1) {
            SL_TRY(sl_strv_push(argv, "--npernode"));
            SL_TRY(sl_strv_pushf(argv, "%d", per));
        }
    } else if (l->hosts.n > 0) {
        /* slots fill in host order, so machine m runs ranks [m·W/M, (m+1)·W/M): the shard group
         * of hybrid sharding is one machine */
        char list[8192];
        size_t n = 0;
        list[0] = '\0';
        for (size_t i = 0; i < l->hosts.n && n < sizeof list; i++) {
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s:%d", i ? "," : "", l->hosts.v[i],
                                  per);
        }
        SL_TRY(sl_strv_push(argv, "--host"));
        SL_TRY(sl_strv_push(argv, list));
    }
    SL_TRY(sl_launch_push_exports(env, argv));
    SL_TRY(sl_strv_push(argv, l->self));
    SL_TRY(sl_strv_push(argv, "launch"));
    SL_TRY(sl_strv_push(argv, "--rank_exec"));
    SL_TRY(sl_strv_push(argv, "--"));
    for (char **p = l->program; *p; p++)
        SL_TRY(sl_strv_push(argv, *p));
    return SL_OK;
}

/* Words made only of these characters need no quotes in a POSIX shell. */
static bool sl_shell_plain(const char *w) {
    if (!*w) return false;
    for (; *w; w++) {
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./=:,+-@%", *w))
            return false;
    }
    return true;
}

static void sl_shell_quote(const char *w, FILE *f) {
    if (sl_shell_plain(w)) {
        fputs(w, f);
        return;
    }
    fputc('\'', f);
    for (; *w; w++) {
        if (*w == '\'') {
            fputs("'\\''", f);
        } else {
            fputc(*w, f);
        }
    }
    fputc('\'', f);
}

void sl_launch_print_command(const sl_strv *env, const sl_strv *argv, FILE *f) {
    for (size_t i = 0; i < env->n; i++) {
        /* NAME=value: the name is plain, the value is quoted as needed */
        const char *eq = strchr(env->v[i], '=');
        fprintf(f, "%.*s=", (int)(eq - env->v[i]), env->v[i]);
        if (eq[1]) sl_shell_quote(eq + 1, f);
        fputc(' ', f);
    }
    for (size_t i = 0; i < argv->n; i++) {
        if (i) fputc(' ', f);
        sl_shell_quote(argv->v[i], f);
    }
    fputc('\n', f);
}
