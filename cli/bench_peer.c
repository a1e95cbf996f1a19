/* The PyTorch eager peer of `shardlab bench --suite e2e`: bench/peer/gpt2_peer.py trains the same
 * GPT-2 shapes as the engine's single-rank runs with the same thread count and writes Google
 * Benchmark JSON, merged into the results as peer/torch_eager/... runs. It needs a Python whose
 * `import torch` works; without one the rows are skipped with a notice, never an error. */
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "cli/bench_cli.h"
#include "conformance/peer_python.h"

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
    if (!sl_peer_script_find("gpt2_peer.py", "SHARDLAB_PEER_SCRIPT", script, sizeof script)) {
        fprintf(stderr,
                "shardlab: bench: note: PyTorch peer rows skipped: %s not found (run from the "
                "source tree, or set SHARDLAB_PEER_SCRIPT)\n",
                script);
        return SL_OK;
    }
    char python[4200], why[512];
    if (!sl_peer_python_find(python, sizeof python, why, sizeof why)) {
        fprintf(stderr, "shardlab: bench: note: PyTorch peer rows skipped: %s\n", why);
        return SL_OK;
    }
    char threads[16], reps[16], peak[32];
    snprintf(threads, sizeof threads, "%d", o->threads);
    snprintf(reps, sizeof reps, "%d", o->repetitions);
    snprintf(peak, sizeof peak, "%.17g", o->peak_gflops);
    char *argv[24] = {python,          script,      "--models", (char *)o->models, "--dtypes",
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
    const int status = sl_peer_spawn(argv, NULL, 0.0, NULL);
    if (status != 0) {
        return sl_error_set(SL_ERR_IO,
                            "bench: the PyTorch peer %s failed (exit status %d; its messages are "
                            "above)",
                            script, status);
    }
    *ran = true;
    return SL_OK;
}
