/* Peer check (DESIGN.md §9 T5), optional: transformers' GPT2LMHeadModel.from_pretrained loads
 * an export of `shardlab train --save_model` with no missing or unexpected weights, and its loss
 * on the step-1 batch equals the step-1 loss of a run started from that export. Skipped, with a
 * notice, when python3 cannot import torch and transformers.
 *
 * Tolerance: both forwards are f32 and differ only in summation order. Each dot product (at most
 * 4C = 256 terms here) carries at most 256 · 2^-24 ≈ 1.5e-5 relative error; the forward chains
 * about 12 such operations (2 blocks × attention and MLP, layer norms, the head), so logits
 * agree to about 2e-4 relative, and so does a cross-entropy of O(1) logits: 1e-3 relative is
 * five times that. A wrong layout (a transposed Conv1D, an untied head, another GELU) moves the
 * loss by far more. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"
#include "tests/export/export_helpers.h"

static const char *const peer_script =
    "import sys, torch\n"
    "from safetensors.torch import load_file\n"
    "from transformers import GPT2LMHeadModel\n"
    "model_dir, batch = sys.argv[1], sys.argv[2]\n"
    "model, info = GPT2LMHeadModel.from_pretrained(model_dir, output_loading_info=True)\n"
    "ok = lambda k: k.endswith('attn.bias') or k.endswith('attn.masked_bias')\n"
    "bad = [k for k in info['missing_keys'] + info['unexpected_keys'] if not ok(k)]\n"
    "if bad: sys.exit('weights not loaded: %s' % bad)\n"
    "model = model.float().eval()\n"
    "b = load_file(batch)\n"
    "x = b['inputs'].reshape(-1, b['inputs'].shape[-1]).long()\n"
    "y = b['targets'].reshape(-1, b['targets'].shape[-1]).long()\n"
    "with torch.no_grad():\n"
    "    logits = model(input_ids=x).logits.float()\n"
    "loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), "
    "y.reshape(-1), ignore_index=-1, reduction='sum') / (y >= 0).sum()\n"
    "print('peer_loss %.9g' % loss.item())\n";

static double step1_loss(const char *run_dir) {
    char path[400];
    snprintf(path, sizeof path, "%s/trajectory.json", run_dir);
    sl_json *root = NULL;
    if (sl_json_parse_file(path, &root) != SL_OK) fail_msg("%s", sl_error_message());
    const double loss =
        sl_json_number(sl_json_get(sl_json_at(sl_json_get(root, "steps"), 0), "loss"));
    sl_json_free(root);
    return loss;
}

static void test_transformers_loads_the_export_and_agrees_on_the_loss(void **state) {
    (void)state;
    if (system("python3 -c 'import torch, transformers' > /dev/null 2>&1") != 0) {
        printf("notice: python3 with torch and transformers is not available; peer check "
               "skipped\n");
        skip();
    }
    char dir[256], a[300], model[400], b[300], log[300], script[300], cmd[2048];
    sl_ts_mkdtemp("export-peer", dir, sizeof dir);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(model, sizeof model, "%s/model", a);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(log, sizeof log, "%s/log.txt", dir);
    const char *flags = XH_MODEL_FLAGS " --micro_batch_size 2 --seq_len 32 --seed 3 --quiet";
    snprintf(cmd, sizeof cmd, "train %s --steps 3 --out %s --save_model %s", flags, a, model);
    if (xh_shardlab(cmd, log) != 0) fail_msg("%s:\n%s", cmd, xh_slurp(log));
    snprintf(cmd, sizeof cmd, "train %s --steps 1 --out %s --init_from %s", flags, b, model);
    if (xh_shardlab(cmd, log) != 0) fail_msg("%s:\n%s", cmd, xh_slurp(log));
    snprintf(script, sizeof script, "%s/peer.py", dir);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs(peer_script, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s' '%s/batch_step1.safetensors' > '%s' 2>&1", script,
             model, b, log);
    if (system(cmd) != 0) fail_msg("transformers could not use the export:\n%s", xh_slurp(log));
    const char *at = strstr(xh_slurp(log), "peer_loss ");
    assert_non_null(at);
    const double theirs = strtod(at + strlen("peer_loss "), NULL);
    const double ours = step1_loss(b);
    printf("step-1 loss: shardlab %.9g, transformers %.9g\n", ours, theirs);
    if (!(fabs(ours - theirs) <= 1e-3 * fabs(ours)))
        fail_msg("losses differ: shardlab %.9g, transformers %.9g (tolerance 1e-3 relative)", ours,
                 theirs);
    sl_ts_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transformers_loads_the_export_and_agrees_on_the_loss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
