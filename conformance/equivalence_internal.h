/* What the files of the equivalence report share (equivalence.h). */
#ifndef SHARDLAB_CONFORMANCE_EQUIVALENCE_INTERNAL_H
#define SHARDLAB_CONFORMANCE_EQUIVALENCE_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include "conformance/compare_ablate.h"
#include "conformance/equivalence.h"
#include "shardlab/data.h"

/* The ablation of two plan-flag sets, each completed by sl_equiv_run_flags, `steps` and `extra`
 * (flags for both sides, may be ""), on gpt-tiny with the reference trainer. */
sl_status sl_equiv_ablate(const char *a, const char *b, const char *extra, int steps,
                          sl_sample_mode sampling, bool knobs, sl_ablation *out);

/* "equivalent (loss gap 0 ≤ 4 × floor 1e-7, ...)" or "not equivalent: ..." */
void sl_equiv_verdict(const sl_ablation *ab, char *buf, size_t cap);

/* A loss-curves plot NAME (A and B of an ablation) written to dir and rendered when asked. */
sl_status sl_equiv_plot_curves(const sl_equiv_opts *o, const char *name, const char *title,
                               const sl_ablation *ab, const char *label_a, const char *label_b);
/* Renders dir/NAME.gp when plots are asked for and gnuplot is installed. */
sl_status sl_equiv_render(const sl_equiv_opts *o, const char *name);

/* "Generated on DATE on HOST (CPU, N logical CPUs)." */
void sl_report_context(FILE *f);

/* Section "Documented facts" (equivalence_facts.c). */
sl_status sl_equiv_facts(const sl_equiv_opts *o, FILE *f);

#endif
