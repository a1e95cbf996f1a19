/* dtype tables of the example configs and the memory plots (compare_report.h). */
#include "conformance/compare_report.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/gnuplot.h"
#include "conformance/compare_side.h"
#include "conformance/equivalence_internal.h"

static int sl_config_name(const struct dirent *e) {
    const char *dot = strrchr(e->d_name, '.');
    return dot && (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml") || !strcmp(dot, ".json"));
}

static sl_status sl_write_text(FILE *f, void *ctx) {
    fputs(ctx, f);
    return SL_OK;
}

static sl_status sl_write_buffer(const char *dir, const char *name, char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return sl_file_write_atomic(path, sl_write_text, text);
}

sl_status sl_report_dtype_tables(const char *configs_dir, const char *out_dir) {
    struct dirent **names = NULL;
    const int n = scandir(configs_dir, &names, sl_config_name, alphasort);
    if (n < 0) return sl_error_set(SL_ERR_IO, "cannot list the example configs in %s", configs_dir);
    sl_gpt2_config gcfg;
    sl_model_desc *model = NULL;
    sl_status st = sl_gpt2_config_from_name("gpt-tiny", &gcfg);
    if (st == SL_OK) st = sl_model_desc_create_gpt2(&gcfg, &model);
    char *text = NULL;
    size_t len = 0;
    FILE *f = st == SL_OK ? open_memstream(&text, &len) : NULL;
    if (st == SL_OK && !f) st = sl_error_set(SL_ERR_OOM, "dtype tables");
    if (f) {
        fprintf(f, "# dtype tables of the example configs\n\n");
        sl_report_context(f);
        fprintf(f,
                "\nEvery file of `examples/configs/`, compiled for gpt-tiny as `shardlab explain "
                "--config_file FILE --dtype_table` prints it (a bare DeepSpeed JSON with "
                "`--use_deepspeed`). Regenerate with `shardlab report`.\n\n");
    }
    for (int i = 0; f && i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", configs_dir, names[i]->d_name);
        sl_compare_side side;
        fprintf(f, "## %s\n\n```text\n", names[i]->d_name);
        if (sl_compare_side_open(&side, 'A', path, "", model) == SL_OK) {
            sl_plan_explain_dtypes(side.plan, model, f);
        } else {
            fprintf(f, "does not compile on its own: %s\n", sl_error_message());
        }
        fprintf(f, "```\n\n");
        sl_compare_side_close(&side);
    }
    if (f) fclose(f);
    if (st == SL_OK) st = sl_write_buffer(out_dir, "dtype-tables.md", text);
    free(text);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    sl_model_desc_destroy(model);
    return st;
}

typedef struct sl_mem_strategy {
    const char *key, *title, *flags;
} sl_mem_strategy;

static const sl_mem_strategy sl_mem_strategies[] = {
    {"fsdp-no_shard", "FSDP1 NO_SHARD", "--use_fsdp --fsdp_sharding_strategy NO_SHARD"},
    {"fsdp-shard_grad_op", "FSDP1 SHARD_GRAD_OP",
     "--use_fsdp --fsdp_sharding_strategy SHARD_GRAD_OP"},
    {"fsdp-full_shard", "FSDP1 FULL_SHARD", "--use_fsdp --fsdp_sharding_strategy FULL_SHARD"},
    {"zero0", "DeepSpeed ZeRO-0", "--use_deepspeed --zero_stage 0"},
    {"zero1", "DeepSpeed ZeRO-1", "--use_deepspeed --zero_stage 1"},
    {"zero2", "DeepSpeed ZeRO-2", "--use_deepspeed --zero_stage 2"},
    {"zero3", "DeepSpeed ZeRO-3", "--use_deepspeed --zero_stage 3"},
};

#define SL_MEM_NW 4
static const int sl_mem_worlds[SL_MEM_NW] = {1, 2, 4, 8};

sl_status sl_report_memory(const char *out_dir, bool plots) {
    sl_gpt2_config gcfg;
    SL_TRY(sl_gpt2_config_from_name("gpt-small", &gcfg));
    sl_model_desc *model = NULL;
    SL_TRY(sl_model_desc_create_gpt2(&gcfg, &model));
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    sl_status st = f ? SL_OK : sl_error_set(SL_ERR_OOM, "memory report");
    if (f) {
        fprintf(f, "# Memory per category, strategy and W\n\n");
        sl_report_context(f);
        fprintf(f, "\nPeak bytes per rank (device + host) that the plan predicts for gpt-small "
                   "(L6 C384, micro-batch 4 × 256 tokens), bf16 mixed precision. Whether the "
                   "reference and the engine observe these values is the conformance tier's T1 "
                   "check (conformance.md). Regenerate with `shardlab report`."
                   "\n\n");
    }
    const size_t n_strat = sizeof sl_mem_strategies / sizeof sl_mem_strategies[0];
    for (size_t s = 0; st == SL_OK && s < n_strat; s++) {
        double x[SL_MEM_NW], y[SL_MEM_CATEGORY_COUNT][SL_MEM_NW];
        for (int w = 0; st == SL_OK && w < SL_MEM_NW; w++) {
            char common[256];
            snprintf(common, sizeof common,
                     "--mixed_precision bf16 --num_processes %d "
                     "--micro_batch_size 4 --seq_len 256",
                     sl_mem_worlds[w]);
            sl_compare_side side;
            st = sl_compare_side_open(&side, 'A', sl_mem_strategies[s].flags, common, model);
            x[w] = sl_mem_worlds[w];
            for (int c = 0; st == SL_OK && c < SL_MEM_CATEGORY_COUNT; c++) {
                const sl_mem_usage *m = &side.plan->predicted.memory[0];
                y[c][w] = (double)(m->peak[SL_SPACE_DEVICE][c] + m->peak[SL_SPACE_HOST][c]) /
                          (1024.0 * 1024.0);
            }
            sl_compare_side_close(&side);
        }
        if (st != SL_OK) break;
        sl_plot_series series[SL_MEM_CATEGORY_COUNT];
        int n_series = 0;
        fprintf(f,
                "## %s\n\n| category (MiB) | W=1 | W=2 | W=4 | W=8 |\n|---|---:|---:|---:|---:|\n",
                sl_mem_strategies[s].title);
        for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++) {
            fprintf(f, "| %s | %.2f | %.2f | %.2f | %.2f |\n",
                    sl_mem_category_name((sl_mem_category)c), y[c][0], y[c][1], y[c][2], y[c][3]);
            if (y[c][0] > 0 || y[c][SL_MEM_NW - 1] > 0) {
                series[n_series++] =
                    (sl_plot_series){sl_mem_category_name((sl_mem_category)c), SL_MEM_NW, x, y[c]};
            }
        }
        char name[64], title[128];
        snprintf(name, sizeof name, "memory-%s", sl_mem_strategies[s].key);
        snprintf(title, sizeof title, "%s, gpt-small bf16: predicted peak per rank",
                 sl_mem_strategies[s].title);
        const sl_plot p = {.name = name,
                           .title = title,
                           .xlabel = "W (ranks)",
                           .ylabel = "MiB per rank",
                           .log_x = true,
                           .n_series = n_series,
                           .series = series};
        st = sl_plot_write(out_dir, &p);
        if (st == SL_OK && plots && sl_gnuplot_available()) {
            char gp[80];
            snprintf(gp, sizeof gp, "%s.gp", name);
            st = sl_gnuplot_render(out_dir, gp);
        }
        fprintf(f, "\n![%s](%s.png)\n\n", title, name);
    }
    if (f) fclose(f);
    if (st == SL_OK) st = sl_write_buffer(out_dir, "memory.md", text);
    free(text);
    sl_model_desc_destroy(model);
    return st;
}
