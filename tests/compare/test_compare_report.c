/* The report generator (`shardlab report`): the dtype tables of every example config, the memory
 * report and its gnuplot files, the ablation's markdown, and plots rendered to real PNGs. Content
 * is checked, not only existence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/gnuplot.h"
#include "conformance/compare_ablate.h"
#include "conformance/compare_report.h"
#include "tests/support/support.h"

/* A run of shardlab past this is a hang (the report fails at once on its bad flag). */
#define SL_RUN_LIMIT_S 300.0

static int count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_dtype_tables_cover_every_example_config(void **state) {
    (void)state;
    char dir[512], path[1024];
    sl_ts_mkdtemp("test-compare", dir, sizeof dir);
    if (sl_report_dtype_tables(SL_SOURCE_DIR "/examples/configs", dir) != SL_OK)
        fail_msg("%s", sl_error_message());
    snprintf(path, sizeof path, "%s/dtype-tables.md", dir);
    char *md = sl_ts_read_or_fail(path);
    int n_configs = 0;
    DIR *d = opendir(SL_SOURCE_DIR "/examples/configs");
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || (strcmp(dot, ".yaml") && strcmp(dot, ".json"))) continue;
        n_configs++;
        char heading[300];
        snprintf(heading, sizeof heading, "## %s\n", e->d_name);
        sl_ts_expect(md, heading);
    }
    closedir(d);
    assert_true(n_configs > 10);
    /* every config compiles on its own, so every section holds a table */
    assert_int_equal(count(md, "preparation (flat/master params)"), n_configs);
    assert_int_equal(count(md, "does not compile"), 0);
    sl_ts_expect(md, "Generated on ");
    /* FSDP1 FULL_SHARD with bf16 mixed precision: fp32 masters, bf16 compute */
    const char *fsdp = strstr(md, "## fsdp1_full_shard_bf16.yaml");
    assert_non_null(fsdp);
    assert_non_null(strstr(fsdp, "training step (forward/backward)   bf16"));
    free(md);
    sl_ts_rmtree(dir);
}

static void test_memory_report_writes_tables_and_plot_scripts(void **state) {
    (void)state;
    char dir[512], path[1024];
    sl_ts_mkdtemp("test-compare", dir, sizeof dir);
    if (sl_report_memory(dir, false) != SL_OK) fail_msg("%s", sl_error_message());
    snprintf(path, sizeof path, "%s/memory.md", dir);
    char *md = sl_ts_read_or_fail(path);
    sl_ts_expect(md, "## DeepSpeed ZeRO-3");
    sl_ts_expect(md, "| optim_states |");
    sl_ts_expect(md, "![");
    free(md);
    snprintf(path, sizeof path, "%s/memory-zero3.gp", dir);
    char *gp = sl_ts_read_or_fail(path);
    sl_ts_expect(gp, "set output 'memory-zero3.png'");
    sl_ts_expect(gp, "'memory-zero3.dat' index 0");
    free(gp);
    snprintf(path, sizeof path, "%s/memory-zero3.dat", dir);
    char *dat = sl_ts_read_or_fail(path);
    /* one line per W in each category's block: 1, 2, 4, 8 */
    assert_true(count(dat, "\n8 ") >= 3);
    sl_ts_expect(dat, "# optim_states\n1 ");
    free(dat);
    sl_ts_rmtree(dir);
}

static void test_plot_renders_a_png_when_gnuplot_exists(void **state) {
    (void)state;
    if (!sl_gnuplot_available()) skip();
    char dir[512], path[1024];
    sl_ts_mkdtemp("test-compare", dir, sizeof dir);
    const double x[3] = {1, 2, 3}, y[3] = {3.0, 2.5, 2.25};
    const sl_plot_series s = {"loss", 3, x, y};
    const sl_plot p = {.name = "t",
                       .title = "it's a test",
                       .xlabel = "step",
                       .ylabel = "loss",
                       .n_series = 1,
                       .series = &s};
    assert_int_equal(sl_plot_write(dir, &p), SL_OK);
    if (sl_gnuplot_render(dir, "t.gp") != SL_OK) fail_msg("%s", sl_error_message());
    snprintf(path, sizeof path, "%s/t.png", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char magic[8] = {0};
    assert_int_equal(fread(magic, 1, 8, f), 8);
    fclose(f);
    assert_memory_equal(magic, "\x89PNG\r\n\x1a\n", 8);
    sl_ts_rmtree(dir);
}

static void test_gnuplot_failure_names_the_script(void **state) {
    (void)state;
    if (!sl_gnuplot_available()) skip();
    char dir[512];
    sl_ts_mkdtemp("test-compare", dir, sizeof dir);
    assert_int_not_equal(sl_gnuplot_render(dir, "missing.gp"), SL_OK);
    assert_non_null(strstr(sl_error_message(), "missing.gp"));
    sl_ts_rmtree(dir);
}

static void test_ablation_markdown_has_method_table_and_remainder(void **state) {
    (void)state;
    sl_ablation ab;
    memset(&ab, 0, sizeof ab);
    ab.steps = 10;
    ab.loss_a = 3.0;
    ab.loss_b = 3.1;
    ab.loss_div = 0.03;
    ab.param_div = 0.01;
    ab.floor_loss = 1e-6;
    ab.floor_param = 1e-6;
    ab.n_rows = 2;
    ab.rows[0] = (sl_ablation_row){.knob = {.kind = SL_KNOB_SWITCH,
                                            .name = "precision.master_init",
                                            .fields = "precision.master_init",
                                            .a = "EXACT",
                                            .b = "ROUNDED"},
                                   .ran = true,
                                   .loss_share = 0.61,
                                   .param_share = 0.58};
    ab.rows[1] = (sl_ablation_row){.knob = {.kind = SL_KNOB_DERIVED,
                                            .name = "derived",
                                            .fields = "layout.digest",
                                            .a = "x",
                                            .b = "y"}};
    ab.remainder_loss = 0.39;
    ab.remainder_param = 0.42;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    sl_ablation_print(&ab, f, true);
    fclose(f);
    sl_ts_expect(text, "NOT equivalent");
    sl_ts_expect(text, "single-field switches from A");
    sl_ts_expect(text, "| `precision.master_init` | EXACT | ROUNDED | 61.0% | 58.0% |");
    sl_ts_expect(text, "| interaction remainder | | | 39.0% | 42.0% |");
    sl_ts_expect(text, "Derived from the fields above, not switched: layout.digest");
    free(text);
}

static void test_report_unknown_part_is_refused_by_name(void **state) {
    (void)state;
    char *out = NULL;
    const int status = sl_ts_shardlab("report --only dtypes,equivalense --out /nonexistent/x", NULL,
                                      SL_RUN_LIMIT_S, &out);
    assert_int_equal(status, 2);
    sl_ts_expect(out, "'equivalense'");
    sl_ts_expect(out, "conformance, equivalence, dtypes, memory");
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_tables_cover_every_example_config),
        cmocka_unit_test(test_memory_report_writes_tables_and_plot_scripts),
        cmocka_unit_test(test_plot_renders_a_png_when_gnuplot_exists),
        cmocka_unit_test(test_gnuplot_failure_names_the_script),
        cmocka_unit_test(test_ablation_markdown_has_method_table_and_remainder),
        cmocka_unit_test(test_report_unknown_part_is_refused_by_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
