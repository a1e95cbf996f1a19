/* Hand-written Google Benchmark JSON files (fake_results.h). */
#include "tests/bench/fake_results.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void sl_fake_entry(FILE *f, const sl_fake_run *r, int family, const char *type,
                          const char *agg, int rep, double t, bool *first) {
    fprintf(f, "%s    {\n      \"name\": \"%s%s%s\",\n", *first ? "" : ",\n", r->name,
            agg ? "_" : "", agg ? agg : "");
    *first = false;
    fprintf(f,
            "      \"family_index\": %d,\n      \"per_family_instance_index\": 0,\n"
            "      \"run_name\": \"%s\",\n      \"run_type\": \"%s\",\n"
            "      \"repetitions\": %d,\n",
            family, r->name, type, r->n);
    if (agg)
        fprintf(f, "      \"aggregate_name\": \"%s\",\n", agg);
    else
        fprintf(f, "      \"repetition_index\": %d,\n", rep);
    if (!agg && rep == 0 && r->error) {
        fprintf(f, "      \"error_occurred\": true,\n      \"error_message\": \"%s\",\n", r->error);
    }
    fprintf(f, "      \"threads\": 1,\n      \"iterations\": 10,\n");
    fprintf(f, "      \"real_time\": %.17g,\n      \"cpu_time\": %.17g,\n", t,
            t * (r->cpu_share > 0 ? r->cpu_share : 1));
    fprintf(f, "      \"time_unit\": \"%s\"", r->unit ? r->unit : "ns");
    if (r->counters) fprintf(f, ",\n      %s", r->counters);
    if (agg && agg[0] == 'c')
        fprintf(f, ",\n      \"wrong\": NaN"); /* cv of zeros */
    else
        fprintf(f, ",\n      \"wrong\": %.1f", r->wrong);
    fprintf(f, "\n    }");
}

void sl_fake_results(const char *path, const char *host, const sl_fake_run *runs, int n) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f,
            "{\n  \"context\": {\n    \"date\": \"2026-11-23T12:00:00+00:00\",\n"
            "    \"host_name\": \"%s\",\n    \"executable\": \"shardlab\",\n"
            "    \"num_cpus\": 2,\n    \"mhz_per_cpu\": 2600,\n"
            "    \"cpu_scaling_enabled\": false,\n    \"caches\": [],\n"
            "    \"load_avg\": [0.5,0.25,0.125],\n    \"library_build_type\": \"release\"\n"
            "  },\n  \"benchmarks\": [\n",
            host);
    bool first = true;
    for (int i = 0; i < n; i++) {
        const sl_fake_run *r = &runs[i];
        double mean = 0;
        for (int k = 0; k < r->n; k++)
            mean += r->times[k] / r->n;
        if (!r->aggregates_only) {
            for (int k = 0; k < r->n; k++)
                sl_fake_entry(f, r, i, "iteration", NULL, k, r->times[k], &first);
        }
        if (r->n < 2 && !r->aggregates_only) continue;
        double var = 0;
        for (int k = 0; k < r->n; k++)
            var += (r->times[k] - mean) * (r->times[k] - mean) / (r->n > 1 ? r->n - 1 : 1);
        double sorted[8] = {0};
        for (int k = 0; k < r->n; k++) {
            int j = k;
            for (; j > 0 && sorted[j - 1] > r->times[k]; j--)
                sorted[j] = sorted[j - 1];
            sorted[j] = r->times[k];
        }
        const double median =
            r->n % 2 ? sorted[r->n / 2] : 0.5 * (sorted[r->n / 2 - 1] + sorted[r->n / 2]);
        sl_fake_entry(f, r, i, "aggregate", "mean", 0, mean, &first);
        sl_fake_entry(f, r, i, "aggregate", "median", 0, median, &first);
        sl_fake_entry(f, r, i, "aggregate", "stddev", 0, sqrt(var), &first);
        sl_fake_entry(f, r, i, "aggregate", "cv", 0, mean > 0 ? sqrt(var) / mean : 0, &first);
    }
    fprintf(f, "\n  ]\n}\n");
    fclose(f);
}
