/* shardlab config — the questionnaire of `accelerate config` (commands/config/cluster.py; the
 * questions of accelerate-facts.md §3.4 that mean something here), writing an Accelerate YAML
 * that Accelerate and shardlab both read. Answers come from standard input one per line, so a
 * pipe works as well as a terminal; an empty line takes the default in brackets. The file is
 * compiled into a plan before it is written (atomically), so what is written always loads.
 * `shardlab config default` writes a one-process file without asking. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "common/config_internal.h"
#include "common/config_tree.h"
#include "common/config_write.h"
#include "common/fileio.h"
#include "shardlab/plan.h"

static const char *const sl_config_usage =
    "usage: shardlab config [--config_file OUT]\n"
    "       shardlab config default [--config_file OUT] [--mixed_precision {no,fp16,bf16}]\n"
    "Asks the questions of `accelerate config` (machine type, machines, processes, DeepSpeed or\n"
    "FSDP, version, strategy, offload, state-dict type, mixed precision, ...) and writes an\n"
    "Accelerate config file (default: default_config.yaml). Answers are read one per line from\n"
    "standard input: pipe them in to script it. `config default` writes a single-process file\n"
    "and never overwrites an existing one.\n";

typedef struct sl_asker {
    FILE *in;
    bool echo; /* input is not a terminal: print each answer after its question */
    sl_config *cfg;
} sl_asker;

static sl_status sl_answer(sl_asker *a, const char *question, const char *dflt, char *buf,
                           size_t cap) {
    if (dflt) {
        printf("%s [%s]: ", question, dflt);
    } else {
        printf("%s: ", question);
    }
    fflush(stdout);
    if (!fgets(buf, (int)cap, a->in)) {
        return sl_error_set(SL_ERR_CONFIG,
                            "standard input ended before the question \"%s\" was answered",
                            question);
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    size_t s = 0, e = strlen(buf);
    while (s < e && isspace((unsigned char)buf[s]))
        s++;
    while (e > s && isspace((unsigned char)buf[e - 1]))
        e--;
    memmove(buf, buf + s, e - s);
    buf[e - s] = '\0';
    if (a->echo) printf("%s\n", buf);
    if (!buf[0] && dflt) snprintf(buf, cap, "%s", dflt);
    return SL_OK;
}

static sl_status sl_ask_bool(sl_asker *a, const char *question, bool dflt, bool *out) {
    const sl_config_key *truth = sl_config_key_find("use_fsdp");
    for (;;) {
        char buf[256];
        SL_TRY(sl_answer(a, question, dflt ? "YES/no" : "yes/NO", buf, sizeof buf));
        if (!strcmp(buf, "YES/no") || !strcmp(buf, "yes/NO")) {
            *out = dflt;
            return SL_OK;
        }
        if (sl_config_check_value(truth, buf, "answer") == SL_OK) {
            *out = sl_config_values_equal(truth, buf, "true");
            return SL_OK;
        }
        printf("Please enter yes or no.\n");
    }
}

/* A menu: the answer is an index or a choice's name (any case). */
static sl_status sl_ask_choice(sl_asker *a, const char *question, const char *const *choices,
                               int dflt, int *out) {
    printf("%s\n", question);
    int n = 0;
    for (; choices[n]; n++)
        printf("  [%d] %s\n", n, choices[n]);
    for (;;) {
        char buf[256], d[16];
        snprintf(d, sizeof d, "%d", dflt);
        SL_TRY(sl_answer(a, "Your choice", d, buf, sizeof buf));
        char *end = NULL;
        const long i = strtol(buf, &end, 10);
        if (end != buf && !*end && i >= 0 && i < n) {
            *out = (int)i;
            return SL_OK;
        }
        for (int c = 0; c < n; c++) {
            if (!strcasecmp(buf, choices[c])) {
                *out = c;
                return SL_OK;
            }
        }
        printf("Please enter a number from 0 to %d or one of the names.\n", n - 1);
    }
}

static sl_status sl_ask_int(sl_asker *a, const char *question, long dflt, long min, long max,
                            long *out) {
    for (;;) {
        char buf[256], d[32];
        snprintf(d, sizeof d, "%ld", dflt);
        SL_TRY(sl_answer(a, question, d, buf, sizeof buf));
        char *end = NULL;
        errno = 0;
        const long v = strtol(buf, &end, 10);
        if (end != buf && !*end && !errno && v >= min && v <= max) {
            *out = v;
            return SL_OK;
        }
        printf("Please enter a whole number from %ld to %ld.\n", min, max);
    }
}

static sl_status sl_set(sl_asker *a, const char *key, const char *value) {
    const sl_source src = {.kind = SL_SOURCE_FLAG, .spelling = "shardlab config"};
    return sl_config_set(a->cfg, key, value, &src);
}

static sl_status sl_set_long(sl_asker *a, const char *key, long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", v);
    return sl_set(a, key, buf);
}

static sl_status sl_set_bool(sl_asker *a, const char *key, bool v) {
    return sl_set(a, key, v ? "true" : "false");
}

static sl_status sl_ask_machines(sl_asker *a, bool cpu) {
    long machines;
    bool b;
    SL_TRY(sl_ask_int(a,
                      "How many different machines will you use (more than 1 for multi-node "
                      "training)?",
                      1, 1, 1 << 20, &machines));
    SL_TRY(sl_set_long(a, "num_machines", machines));
    if (machines > 1) {
        long rank, port;
        char ip[256];
        SL_TRY(sl_ask_int(a, "What is the rank of this machine?", 0, 0, machines - 1, &rank));
        SL_TRY(sl_set_long(a, "machine_rank", rank));
        do {
            SL_TRY(sl_answer(a,
                             "What is the IP address of the machine that will host the main "
                             "process?",
                             NULL, ip, sizeof ip));
        } while (!ip[0]);
        SL_TRY(sl_set(a, "main_process_ip", ip));
        SL_TRY(sl_ask_int(a, "What is the port you will use to communicate with the main process?",
                          29500, 0, 65535, &port));
        SL_TRY(sl_set_long(a, "main_process_port", port));
        SL_TRY(sl_ask_bool(a, "Are all the machines on the same local network?", true, &b));
        SL_TRY(sl_set_bool(a, "same_network", b));
    }
    SL_TRY(sl_ask_bool(a,
                       "Should distributed operations be checked while running for errors? "
                       "This can avoid timeout issues but will be slower.",
                       false, &b));
    SL_TRY(sl_set_bool(a, "debug", b));
    if (cpu) {
        SL_TRY(sl_ask_bool(a, "Do you want shardlab to launch mpirun with a hostfile?", false, &b));
        if (b) {
            char path[1024];
            SL_TRY(sl_answer(a, "Please enter the path to the hostfile to use with mpirun",
                             "~/hostfile", path, sizeof path));
            SL_TRY(sl_set(a, "mpirun_hostfile", path));
        }
    }
    return SL_OK;
}

/* Returns whether a DeepSpeed JSON was given (then mixed precision is not asked: it is the
 * JSON's, as in Accelerate). */
static sl_status sl_ask_deepspeed(sl_asker *a, bool *json) {
    static const char *const devices[] = {"none", "cpu", NULL};
    bool b;
    SL_TRY(
        sl_ask_bool(a, "Do you want to specify a json file to a DeepSpeed config?", false, json));
    if (*json) {
        char path[1024];
        struct stat sb;
        for (;;) {
            SL_TRY(sl_answer(a, "Please enter the path to the json DeepSpeed config file", NULL,
                             path, sizeof path));
            if (path[0] && stat(path, &sb) == 0) break;
            printf("%s does not exist; enter the path of an existing file.\n", path);
        }
        return sl_set(a, "deepspeed_config_file", path);
    }
    int dev;
    long stage, steps;
    SL_TRY(
        sl_ask_int(a, "What should be your DeepSpeed's ZeRO optimization stage?", 2, 0, 3, &stage));
    SL_TRY(sl_set_long(a, "zero_stage", stage));
    if (stage >= 2) {
        SL_TRY(sl_ask_choice(a, "Where to offload optimizer states?", devices, 0, &dev));
        SL_TRY(sl_set(a, "offload_optimizer_device", devices[dev]));
    }
    if (stage == 3) {
        SL_TRY(sl_ask_choice(a, "Where to offload parameters?", devices, 0, &dev));
        SL_TRY(sl_set(a, "offload_param_device", devices[dev]));
    }
    SL_TRY(sl_ask_int(a, "How many gradient accumulation steps you're passing in your script?", 1,
                      1, 1 << 20, &steps));
    SL_TRY(sl_set_long(a, "gradient_accumulation_steps", steps));
    SL_TRY(sl_ask_bool(a, "Do you want to use gradient clipping?", false, &b));
    if (b) {
        char value[64];
        for (;;) {
            SL_TRY(
                sl_answer(a, "What is the gradient clipping value?", "1.0", value, sizeof value));
            if (sl_config_check_value(sl_config_key_find("gradient_clipping"), value, "answer") ==
                    SL_OK &&
                strtod(value, NULL) >= 0) {
                break;
            }
            printf("Please enter a number >= 0.\n");
        }
        SL_TRY(sl_set(a, "gradient_clipping", value));
    }
    if (stage == 3) {
        SL_TRY(sl_ask_bool(a, "Do you want to save 16-bit model weights when using ZeRO Stage-3?",
                           false, &b));
        SL_TRY(sl_set_bool(a, "zero3_save_16bit_model", b));
        SL_TRY(sl_ask_bool(a,
                           "Do you want to enable `deepspeed.zero.Init` when using ZeRO Stage-3 "
                           "for constructing massive models?",
                           false, &b));
        SL_TRY(sl_set_bool(a, "zero3_init_flag", b));
    }
    return SL_OK;
}

static sl_status sl_ask_fsdp(sl_asker *a) {
    static const char *const strategies[] = {"FULL_SHARD",   "SHARD_GRAD_OP",      "NO_SHARD",
                                             "HYBRID_SHARD", "HYBRID_SHARD_ZERO2", NULL};
    static const char *const prefetch[] = {"BACKWARD_PRE", "BACKWARD_POST", "NO_PREFETCH", NULL};
    static const char *const sd_v1[] = {"FULL_STATE_DICT", "LOCAL_STATE_DICT", "SHARDED_STATE_DICT",
                                        NULL};
    static const char *const sd_v2[] = {"SHARDED_STATE_DICT", "FULL_STATE_DICT", NULL};
    long version;
    int c;
    bool b;
    SL_TRY(sl_ask_int(a, "What should be your FSDP version?", 2, 1, 2, &version));
    const bool v1 = version == 1;
    SL_TRY(sl_set_long(a, "fsdp_version", version));
    if (v1) {
        SL_TRY(sl_ask_choice(a, "What should be your sharding strategy?", strategies, 0, &c));
        SL_TRY(sl_set(a, "fsdp_sharding_strategy", strategies[c]));
    } else {
        SL_TRY(sl_ask_bool(a, "Do you want to enable resharding after forward?", true, &b));
        SL_TRY(sl_set_bool(a, "fsdp_reshard_after_forward", b));
    }
    SL_TRY(sl_ask_bool(a, "Do you want to offload parameters and gradients to CPU?", false, &b));
    SL_TRY(sl_set_bool(a, "fsdp_offload_params", b));
    printf("Auto wrap policy: TRANSFORMER_BASED_WRAP with GPT2Block (one FSDP unit per "
           "transformer block, the only policy shardlab runs).\n");
    SL_TRY(sl_set(a, "fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP"));
    SL_TRY(sl_set(a, "fsdp_transformer_layer_cls_to_wrap", "GPT2Block"));
    if (v1) {
        SL_TRY(sl_ask_choice(a, "What should be your FSDP's backward prefetch policy?", prefetch, 0,
                             &c));
        SL_TRY(sl_set(a, "fsdp_backward_prefetch", prefetch[c]));
    }
    const char *const *sd = v1 ? sd_v1 : sd_v2;
    SL_TRY(sl_ask_choice(a, "What should be your FSDP's state dict type?", sd, 0, &c));
    SL_TRY(sl_set(a, "fsdp_state_dict_type", sd[c]));
    if (v1) {
        SL_TRY(sl_ask_bool(a, "Do you want to enable FSDP's forward prefetch policy?", false, &b));
        SL_TRY(sl_set_bool(a, "fsdp_forward_prefetch", b));
        SL_TRY(sl_ask_bool(a, "Do you want to enable FSDP's `use_orig_params` feature?", true, &b));
        SL_TRY(sl_set_bool(a, "fsdp_use_orig_params", b));
    }
    bool ram;
    SL_TRY(sl_ask_bool(a,
                       "Do you want to enable CPU RAM efficient model loading (rank 0 loads, "
                       "the others receive)?",
                       true, &ram));
    SL_TRY(sl_set_bool(a, "fsdp_cpu_ram_efficient_loading", ram));
    if (v1) {
        b = true; /* RAM-efficient loading needs the broadcast */
        if (!ram) {
            SL_TRY(sl_ask_bool(a,
                               "Do you want each individually wrapped FSDP unit to broadcast "
                               "module parameters from rank 0 at the start?",
                               true, &b));
        }
        SL_TRY(sl_set_bool(a, "fsdp_sync_module_states", b));
    }
    SL_TRY(sl_ask_bool(a, "Do you want to enable FSDP activation checkpointing?", false, &b));
    return sl_set_bool(a, "fsdp_activation_checkpointing", b);
}

static sl_status sl_questionnaire(sl_asker *a) {
    static const char *const machines[] = {"No distributed training", "multi-CPU", "multi-GPU",
                                           NULL};
    static const char *const precisions[] = {"no", "fp16", "bf16", NULL};
    static const char *const types[] = {"NO", "MULTI_CPU", "MULTI_GPU"};
    int machine, mp;
    bool json = false, b;
    SL_TRY(sl_ask_choice(a, "Which type of machine are you using?", machines, 0, &machine));
    SL_TRY(sl_set(a, "compute_environment", "LOCAL_MACHINE"));
    SL_TRY(sl_set(a, "distributed_type", types[machine]));
    SL_TRY(sl_set_bool(a, "use_cpu", machine == 1));
    if (machine == 0) {
        SL_TRY(sl_set_long(a, "num_processes", 1));
    } else {
        SL_TRY(sl_ask_machines(a, machine == 1));
        SL_TRY(sl_ask_bool(a, "Do you want to use DeepSpeed?", false, &b));
        if (b) {
            SL_TRY(sl_set(a, "distributed_type", "DEEPSPEED"));
            SL_TRY(sl_ask_deepspeed(a, &json));
        } else {
            SL_TRY(sl_ask_bool(a, "Do you want to use FullyShardedDataParallel?", false, &b));
            if (b) {
                SL_TRY(sl_set(a, "distributed_type", "FSDP"));
                SL_TRY(sl_ask_fsdp(a));
            }
        }
        long n;
        SL_TRY(sl_ask_int(a,
                          "How many processes in total (over all machines) should be used "
                          "for distributed training?",
                          2, 2, 1 << 20, &n));
        SL_TRY(sl_set_long(a, "num_processes", n));
        if (machine == 2) {
            char ids[256];
            SL_TRY(sl_answer(a,
                             "What GPU(s) (by id) should be used for training on this machine "
                             "as a comma-separated list?",
                             "all", ids, sizeof ids));
            SL_TRY(sl_set(a, "gpu_ids", ids));
        }
    }
    if (json) return SL_OK; /* the DeepSpeed JSON gives the dtype */
    SL_TRY(sl_ask_choice(a, "Do you wish to use mixed precision?", precisions, 0, &mp));
    return sl_set(a, "mixed_precision", precisions[mp]);
}

/* Writes the file after compiling what it will hold. */
static sl_status sl_config_save(const sl_config *cfg, const char *path) {
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) return sl_error_set(SL_ERR_OOM, "out of memory writing %s", path);
    sl_status st = sl_config_write(cfg, SL_OUT_ACCELERATE_YAML, mem, NULL);
    fclose(mem);
    sl_config *check = NULL;
    sl_gpt2_config g;
    sl_model_desc *model = NULL;
    sl_plan *plan = NULL;
    if (st == SL_OK) st = sl_config_create(&check);
    if (st == SL_OK) st = sl_config_load_text(check, text, len, path, SL_FORMAT_YAML, NULL);
    if (st == SL_OK) st = sl_gpt2_config_from_name("gpt-tiny", &g);
    if (st == SL_OK) st = sl_model_desc_create_gpt2(&g, &model);
    if (st == SL_OK) st = sl_plan_compile(check, model, &plan);
    if (st == SL_OK) st = sl_file_write_atomic_bytes(path, text, len);
    if (st == SL_OK) {
        printf("accelerate configuration saved at %s: plan %s %s, W = %d\n"
               "see it with: shardlab explain --config_file %s\n",
               path, sl_dialect_name(plan->dialect), sl_strategy_name(plan->strategy),
               plan->world_size, path);
    }
    sl_plan_destroy(plan);
    sl_model_desc_destroy(model);
    sl_config_destroy(check);
    free(text);
    return st;
}

static sl_status sl_config_default(sl_config *cfg, const char *path, const char *precision) {
    struct stat sb;
    if (stat(path, &sb) == 0) {
        return sl_error_set(SL_ERR_IO,
                            "%s exists; `shardlab config default` never overwrites a "
                            "configuration: remove it or pass --config_file NEW_PATH",
                            path);
    }
    sl_asker a = {.cfg = cfg};
    SL_TRY(sl_set(&a, "compute_environment", "LOCAL_MACHINE"));
    SL_TRY(sl_set(&a, "distributed_type", "NO"));
    SL_TRY(sl_set(&a, "num_processes", "1"));
    SL_TRY(sl_set(&a, "num_machines", "1"));
    SL_TRY(sl_set(&a, "use_cpu", "false"));
    SL_TRY(sl_set(&a, "debug", "false"));
    SL_TRY(sl_set(&a, "mixed_precision", precision ? precision : "no"));
    SL_TRY(sl_config_check_value(sl_config_key_find("mixed_precision"),
                                 precision ? precision : "no", "--mixed_precision"));
    return sl_config_save(cfg, path);
}

int sl_cmd_config(int argc, char **argv) {
    const char *path = "default_config.yaml", *precision = NULL;
    bool dflt = false;
    sl_status st = SL_OK;
    for (int i = 0; st == SL_OK && i < argc; i++) {
        const bool valued =
            !strcmp(argv[i], "--config_file") || !strcmp(argv[i], "--mixed_precision");
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sl_config_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "default") && i == 0) {
            dflt = true;
        } else if (valued && i + 1 >= argc) {
            st = sl_error_set(SL_ERR_CONFIG, "%s needs a value", argv[i]);
        } else if (!strcmp(argv[i], "--config_file")) {
            path = argv[++i];
        } else if (!strcmp(argv[i], "--mixed_precision") && dflt) {
            precision = argv[++i];
        } else {
            static const char *const flags[] = {"config_file", "mixed_precision", "help", NULL};
            st = sl_config_unknown_arg("config", argv[i], flags);
        }
    }
    sl_config *cfg = NULL;
    if (st == SL_OK) st = sl_config_create(&cfg);
    if (st == SL_OK && dflt) st = sl_config_default(cfg, path, precision);
    if (st == SL_OK && !dflt) {
        sl_asker a = {.in = stdin, .echo = !isatty(STDIN_FILENO), .cfg = cfg};
        st = sl_questionnaire(&a);
        if (st == SL_OK) st = sl_config_save(cfg, path);
    }
    sl_config_destroy(cfg);
    return sl_cli_report(st);
}
