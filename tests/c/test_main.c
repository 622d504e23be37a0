/* The unit test binary: every group in order, then the summary line. */
#define CHECK_MAIN
#include "check.h"
#include "ssp.h"
#include "tests.h"

int main(void)
{
    ssp_global_init();
    run_config_tests();
    run_selfcheck_hardening_tests();
    run_strmap_tests();
    run_roster_parse_tests();
    run_roster_api_tests();
    run_decide_tests();
    run_rule_opt_in_tests();
    run_sign_in_tests();
    run_rule_one_way_tests();
    run_rule_locks_tests();
    run_rule_visibility_tests();
    run_rule_closed_doors_tests();
    run_rule_special_rooms_tests();
    run_rule_after_the_fact_tests();
    run_matrix_tests();
    run_audit_tests();
    run_audit_kinds_tests();
    run_audit_denial_tests();
    run_audit_flood_tests();
    run_store_tests();
    run_pgstore_tests();
    run_store_layer_tests();
    run_reconcile_tests();
    run_reconcile_plan_tests();
    run_roster_feed_tests();
    run_audit_view_tests();
    run_audit_chart_tests();
    run_offline_tests();
    run_room_shape_tests();
    run_groups_tests();
    run_groups_api_tests();
    return check_finish();
}
