/* shardlab launch — start W processes of a program through mpirun, each handed the resolved plan
 * through its environment (DESIGN.md §8). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/launch.h"
#include "shardlab/config_env.h"
#include "shardlab/model.h"
#include "shardlab/plan.h"

static const char *const sl_launch_usage =
    "usage: shardlab launch [plan flags | --config_file F] [--num_processes W]\n"
    "         [--num_machines M --machine_rank R --main_process_ip IP --main_process_port P |\n"
    "          --hostfile H] [--max_restarts N] [--debug] [--dry_run] PROGRAM [ARGS...]\n"
    "Starts W processes of PROGRAM through Open MPI's mpirun, locally or across machines. The\n"
    "plan (flags, config files, SHARDLAB_CONFIG_* variables) is checked — it must compile for W\n"
    "ranks — and reaches every process through its environment (shardlab/config_env.h), so the\n"
    "program switches between FSDP and DeepSpeed plans without a code change. SIGINT, SIGTERM\n"
    "and SIGHUP are passed on to the job. When a rank dies the job ends and the rank and its\n"
    "signal or exit status are named; launch returns the job's exit status (128 + signal for a\n"
    "killed rank; with restarts, the last start's). Flags and config-file keys mean the same\n"
    "(machine_rank: 1 in a config file is --machine_rank 1).\n"
    "  --config_file F         an Accelerate or DeepSpeed config file (every rank loads it too)\n"
    "  --num_processes W       ranks in all (default 1)\n"
    "  --num_machines M        machines (default 1); each runs W/M ranks\n"
    "  --machine_rank R        this machine's index, 0..M-1 (run launch on every machine)\n"
    "  --main_process_ip IP    machine 0's address; --main_process_port P a free TCP port there:\n"
    "                          machine 0 collects the others on it and starts every rank\n"
    "  --hostfile H            an Open MPI hostfile (\"HOST [slots=N]\" per line) instead: one\n"
    "                          launch on one machine starts every rank (--mpirun_hostfile,\n"
    "                          --deepspeed_hostfile too)\n"
    "  --max_restarts N        when the job fails (a rank killed, or exiting non-zero), end\n"
    "                          every rank and start the whole job again, up to N times\n"
    "                          (default 0); each start sets SHARDLAB_RESTART_COUNT (0, 1, ...)\n"
    "                          and the program resumes by itself, e.g. shardlab train\n"
    "                          --output_dir D --checkpointing_steps S --resume_from_checkpoint\n"
    "                          latest. A signal to launch stops the job without a restart\n"
    "  --debug                 check every collective's signature across ranks\n"
    "                          (SHARDLAB_COMM_DEBUG=1)\n"
    "  --dry_run               print the command (environment included) instead of running it\n"
    "Environment: OMP_NUM_THREADS defaults to cores / (ranks per machine) and GOMP_SPINCOUNT to\n"
    "10000 unless it or OMP_WAIT_POLICY is set; SHARDLAB_COMM_DEBUG,\n"
    "SHARDLAB_COMM_TIMEOUT and every other SHARDLAB_* variable reach all ranks;\n"
    "SHARDLAB_LAUNCH_TIMEOUT (seconds, default 300) bounds how long machines wait for each "
    "other.\n";

/* The command's own flags (not configuration keys), for did-you-mean. */
static const char *const sl_launch_flags[] = {"hostfile", "max_restarts", "dry_run", "help", NULL};

static bool sl_launch_own_flag(const char *name) {
    for (const char *const *f = sl_launch_flags; *f; f++) {
        if (!strcmp(name, *f)) return true;
    }
    return false;
}

/* The spellings sl_config_parse_args takes as the value of a bare boolean flag (Accelerate's
 * str_to_bool): after "--use_fsdp", "true" is its value but "train.sh" is the program. */
static bool sl_bool_word(const char *w) {
    static const char *const words[] = {"true", "false", "yes", "no", "1", "0",
                                        "on",   "off",   "t",   "f",  "y", "n"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (!strcasecmp(w, words[i])) return true;
    }
    return false;
}

/* "--name[=value]": the name, and the value after '=' (NULL without one). */
static void sl_flag_split(const char *arg, char *name, size_t cap, const char **value) {
    const char *eq = strchr(arg, '=');
    const size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg) - 2;
    snprintf(name, cap, "%.*s", (int)(len < cap ? len : cap - 1), arg + 2);
    *value = eq ? eq + 1 : NULL;
}

/* Whether flag `name` without "=value" consumes the next argument. */
static bool sl_flag_takes_next(const char *name, const char *next) {
    if (!strcmp(name, "dry_run") || !strcmp(name, "help")) return false;
    const sl_config_key *k = sl_config_key_find(name);
    if (k && k->type == SL_KEY_BOOL) return next && sl_bool_word(next);
    return next != NULL;
}

/* Where the program starts: after "--", or at the first argument that is neither a flag nor a
 * flag's value. *flags_end is where the flags end (the "--" excluded). */
static sl_status sl_launch_find_program(int argc, char **argv, int *flags_end, int *program) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            *flags_end = i;
            *program = i + 1;
            return SL_OK;
        }
        if (strncmp(a, "--", 2) != 0) {
            *flags_end = *program = i;
            return SL_OK;
        }
        char name[128];
        const char *value;
        sl_flag_split(a, name, sizeof name, &value);
        if (!sl_launch_own_flag(name) && !sl_config_key_find(name)) {
            return sl_config_unknown_arg("launch", a, sl_launch_flags);
        }
        if (!value && sl_flag_takes_next(name, i + 1 < argc ? argv[i + 1] : NULL)) i++;
    }
    *flags_end = *program = argc;
    return SL_OK;
}

/* --max_restarts N: a whole number, 0 to 1000. */
static sl_status sl_launch_parse_restarts(sl_launch *l, const char *value) {
    char *end = NULL;
    errno = 0;
    const long n = value ? strtol(value, &end, 10) : -1;
    if (!value || !*value || *end || errno || n < 0 || n > 1000) {
        return sl_error_set(SL_ERR_CONFIG,
                            "launch: --max_restarts %s%s%s: expected how many times to restart "
                            "a failed job, a whole number from 0 to 1000 (e.g. --max_restarts 3)",
                            value ? "'" : "(no value)", value ? value : "", value ? "'" : "");
    }
    l->max_restarts = (int)n;
    return SL_OK;
}

/* What sl_config_parse_args left: launch's own flags and the launch keys (machine_rank, ...),
 * which go into the config with a FLAG source like every other key, above the config files. */
static sl_status sl_launch_parse_own(sl_launch *l, int n, char **rest) {
    for (int i = 0; i < n; i++) {
        char name[128];
        const char *value;
        sl_flag_split(rest[i], name, sizeof name, &value);
        if (!strcmp(name, "dry_run")) {
            l->dry_run = true;
            continue;
        }
        if (!strcmp(name, "max_restarts")) {
            if (!value && i + 1 < n) value = rest[++i];
            SL_TRY(sl_launch_parse_restarts(l, value));
            continue;
        }
        const sl_config_key *k =
            sl_config_key_find(!strcmp(name, "hostfile") ? "mpirun_hostfile" : name);
        if (!k) return sl_config_unknown_arg("launch", rest[i], sl_launch_flags);
        if (!value && sl_flag_takes_next(name, i + 1 < n ? rest[i + 1] : NULL)) value = rest[++i];
        if (!value && k->type != SL_KEY_BOOL) {
            return sl_error_set(SL_ERR_CONFIG, "launch: --%s needs a value (%s)", name, k->help);
        }
        sl_source src = {.kind = SL_SOURCE_FLAG};
        snprintf(src.spelling, sizeof src.spelling, "--%.100s", name);
        SL_TRY(sl_config_set(l->cfg, k->name, value ? value : "true", &src));
    }
    return SL_OK;
}

/* The launch keys, wherever they came from. */
static sl_status sl_launch_read_keys(sl_launch *l) {
    const sl_config *cfg = l->cfg;
    if (sl_config_get(cfg, "machine_rank", NULL)) {
        long long r = 0;
        SL_TRY(sl_config_get_int(cfg, "machine_rank", 0, 0, 1 << 20, &r));
        l->machine_rank = (int)r;
    }
    l->main_ip = sl_config_get(cfg, "main_process_ip", NULL);
    if (sl_config_get(cfg, "main_process_port", NULL)) {
        long long p = 0;
        SL_TRY(sl_config_get_int(cfg, "main_process_port", 0, 1, 65535, &p));
        l->main_port = (int)p;
    }
    l->hostfile = sl_config_get(cfg, "mpirun_hostfile", NULL);
    if (!l->hostfile) l->hostfile = sl_config_get(cfg, "deepspeed_hostfile", NULL);
    SL_TRY(sl_config_get_bool(cfg, "debug", false, &l->debug));
    return SL_OK;
}

/* The plan must compile for this W (a built-in model stands in for the program's: the checks
 * that matter here — W against the strategy and M, every key's value — do not depend on it). */
static sl_status sl_launch_check_plan(sl_launch *l) {
    long long w = 1, m = 1, t = 64;
    SL_TRY(sl_config_get_int(l->cfg, "num_processes", 1, 1, 1 << 20, &w));
    SL_TRY(sl_config_get_int(l->cfg, "num_machines", 1, 1, 1 << 20, &m));
    SL_TRY(sl_config_get_int(l->cfg, "seq_len", 64, 1, 1 << 30, &t));
    l->world = (int)w;
    l->machines = (int)m;
    sl_gpt2_config g;
    SL_TRY(sl_gpt2_config_from_name("gpt-tiny", &g));
    if (t > g.block_size) g.block_size = (int)t;
    sl_model_desc *model = NULL;
    SL_TRY(sl_model_desc_create_gpt2(&g, &model));
    sl_plan *plan = NULL;
    const sl_status st = sl_plan_compile(l->cfg, model, &plan);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(model);
    if (st != SL_OK)
        return sl_error_prefix(st, "launch: the plan cannot run on %d ranks: ", l->world);
    return SL_OK;
}

/* Config files often carry machine_rank, main_process_ip and main_process_port for a single
 * machine too; only what the launch mode needs is required, and only contradictions fail. */
static sl_status sl_launch_check_machines(sl_launch *l) {
    if (l->hostfile) {
        if (l->machine_rank > 0) {
            return sl_error_set(SL_ERR_CONFIG,
                                "launch: with a hostfile one launch starts every machine's ranks, "
                                "but machine_rank = %d; run it once, on machine 0, or drop the "
                                "hostfile and run launch on every machine",
                                l->machine_rank);
        }
        int hosts = 0;
        SL_TRY(sl_launch_check_hostfile(l->hostfile, &hosts));
        if (hosts < l->machines) {
            return sl_error_set(SL_ERR_CONFIG,
                                "launch: the hostfile '%s' lists %d host%s but num_machines = %d",
                                l->hostfile, hosts, hosts == 1 ? "" : "s", l->machines);
        }
        return SL_OK;
    }
    if (l->machines == 1) {
        if (l->machine_rank > 0) {
            return sl_error_set(SL_ERR_CONFIG,
                                "launch: machine_rank = %d needs num_machines > %d (found 1)",
                                l->machine_rank, l->machine_rank);
        }
        return SL_OK;
    }
    if (!l->main_ip) {
        return sl_error_set(SL_ERR_CONFIG,
                            "launch: with num_machines = %d, give machine 0's "
                            "address with --main_process_ip (or use --hostfile)",
                            l->machines);
    }
    if (!l->main_port) {
        return sl_error_set(SL_ERR_CONFIG,
                            "launch: with num_machines = %d, give a free TCP port "
                            "on machine 0 with --main_process_port",
                            l->machines);
    }
    if (l->machine_rank < 0 || l->machine_rank >= l->machines) {
        return sl_error_set(SL_ERR_CONFIG,
                            "launch: with num_machines = %d, give each machine its --machine_rank "
                            "in 0..%d%s",
                            l->machines, l->machines - 1,
                            l->machine_rank < 0 ? " (missing)" : " (out of range)");
    }
    return SL_OK;
}

static sl_status sl_launch_prepare(sl_launch *l, int argc, char **argv) {
    int flags_end = 0, prog = 0;
    SL_TRY(sl_launch_find_program(argc, argv, &flags_end, &prog));
    if (prog >= argc) {
        return sl_error_set(SL_ERR_CONFIG, "launch: no PROGRAM to run\n%s", sl_launch_usage);
    }
    l->program = argv + prog;
    SL_TRY(sl_config_create(&l->cfg));
    SL_TRY(sl_config_load_env(l->cfg, NULL));
    char **rest = calloc((size_t)flags_end + 1, sizeof *rest);
    if (!rest) return sl_error_set(SL_ERR_OOM, "out of memory parsing arguments");
    int n_rest = 0;
    sl_status st = sl_config_parse_args(l->cfg, flags_end, argv, rest, &n_rest);
    if (st == SL_OK) st = sl_launch_parse_own(l, n_rest, rest);
    free(rest);
    SL_TRY(st);
    SL_TRY(sl_launch_read_keys(l));
    SL_TRY(sl_launch_check_plan(l));
    SL_TRY(sl_launch_check_machines(l));
    SL_TRY(sl_launch_check_program(l->program[0]));
    const ssize_t n = readlink("/proc/self/exe", l->self, sizeof l->self - 1);
    if (n > 0) {
        l->self[n] = '\0';
    } else {
        sl_launch_which("shardlab", l->self, sizeof l->self);
        if (!l->self[0]) {
            return sl_error_set(SL_ERR_IO, "launch: cannot find the shardlab executable for the "
                                           "rank wrapper (no /proc/self/exe, none on $PATH)");
        }
    }
    return SL_OK;
}

/* Builds and prints or runs the mpirun command on this machine (machine 0 when there are
 * several). */
static sl_status sl_launch_run(sl_launch *l, int *exit_status, int *stopped_by) {
    sl_rendezvous rv = {0};
    const bool rendezvous = l->machines > 1 && !l->hostfile;
    if (rendezvous && l->dry_run) {
        SL_TRY(sl_strv_push(&l->hosts, l->main_ip));
        for (int r = 1; r < l->machines; r++)
            SL_TRY(sl_strv_pushf(&l->hosts, "MACHINE_%d_ADDRESS", r));
    } else if (rendezvous) {
        SL_TRY(sl_launch_rendezvous_main(l, &rv));
    }
    sl_strv env = {0}, cmd = {0};
    sl_status st = sl_launch_build(l, &env, &cmd);
    if (st == SL_OK && l->dry_run) {
        sl_launch_print_command(&env, &cmd, stdout);
        if (l->max_restarts > 0) {
            printf("# when it fails, it runs again up to %d times with "
                   "SHARDLAB_RESTART_COUNT=1..%d\n",
                   l->max_restarts, l->max_restarts);
        }
        *exit_status = 0;
    } else if (st == SL_OK) {
        st = sl_launch_supervise(l, &env, &cmd, exit_status, stopped_by);
    }
    if (rendezvous && !l->dry_run) sl_launch_rendezvous_finish(&rv, st == SL_OK ? *exit_status : 1);
    sl_strv_free(&env);
    sl_strv_free(&cmd);
    return st;
}

int sl_cmd_launch(int argc, char **argv) {
    /* internal: how mpirun starts each rank (launch_exec.c), not an option for users */
    if (argc >= 2 && !strcmp(argv[0], "--rank_exec") && !strcmp(argv[1], "--") && argc > 2) {
        return sl_launch_rank_main(argv + 2);
    }
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0 && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sl_launch_usage, stdout);
            sl_cli_print_plan_keys(stdout);
            return 0;
        }
    }
    sl_launch l = {.machine_rank = -1};
    int status = 0, stopped_by = 0;
    sl_status st = sl_launch_prepare(&l, argc, argv);
    if (st == SL_OK && l.machines > 1 && !l.hostfile && l.machine_rank > 0) {
        if (l.dry_run) {
            printf("# machine %d joins the job at %s:%d; machine 0 starts every rank\n",
                   l.machine_rank, l.main_ip, l.main_port);
        } else {
            st = sl_launch_rendezvous_join(&l, &status);
        }
    } else if (st == SL_OK) {
        st = sl_launch_run(&l, &status, &stopped_by);
    }
    sl_config_destroy(l.cfg);
    sl_strv_free(&l.hosts);
    if (st != SL_OK) return sl_cli_report(st);
    if (stopped_by && status != 0) {
        fprintf(stderr, "shardlab: error: launch: stopped by signal %d (%s); the job was ended\n",
                stopped_by, strsignal(stopped_by));
    } else if (status != 0) {
        fprintf(stderr, "shardlab: error: launch: the job failed with exit status %d%s\n", status,
                status > 128 ? " (128 + the signal that killed a rank, named above)" : "");
    }
    return status;
}
