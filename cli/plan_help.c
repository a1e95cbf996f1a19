/* The plan keys as a command's --help lists them, straight from the key table. */
#include "cli/commands.h"
#include "common/config_internal.h"

void sl_cli_print_plan_keys(FILE *f) {
    static const char *const types[] = {"bool", "int", "float", "enum", "string"};
    fprintf(f, "plan keys (--key value or --key=value; a bool key alone means true):\n");
    for (size_t i = 0; i < sl_config_key_count(); i++) {
        const sl_config_key *k = sl_config_key_at(i);
        if (sl_config_key_family(k) == SL_FAMILY_LAUNCH) continue; /* `shardlab launch --help` */
        const char *dflt = sl_config_key_default(k);
        fprintf(f, "  --%s  %s", k->name, types[k->type]);
        if (k->allowed) {
            for (const char *const *a = k->allowed; *a; a++) {
                fprintf(f, "%s%s", a == k->allowed ? " {" : ",", *a);
            }
            fprintf(f, "}");
        }
        fprintf(f, ", default %s\n      %s\n", dflt ? dflt : "per dialect (see text)", k->help);
    }
}
