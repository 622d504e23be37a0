/* The groups of unit tests, one per file, run by test_main.c: a file per
 * source file (test_<source>.c) and a file per rule family
 * (test_rule_<family>.c, the rules of csrc/rules/<family>.c). */
#ifndef SSP_TESTS_H
#define SSP_TESTS_H

void run_config_tests(void);
void run_selfcheck_hardening_tests(void);
void run_strmap_tests(void);
void run_roster_parse_tests(void);
void run_roster_api_tests(void);
void run_decide_tests(void);
void run_rule_opt_in_tests(void);
void run_sign_in_tests(void);
void run_rule_one_way_tests(void);
void run_rule_locks_tests(void);
void run_rule_visibility_tests(void);
void run_rule_closed_doors_tests(void);
void run_rule_special_rooms_tests(void);
void run_rule_after_the_fact_tests(void);
void run_matrix_tests(void);
void run_audit_tests(void);
void run_audit_kinds_tests(void);
void run_audit_denial_tests(void);
void run_audit_flood_tests(void);
void run_store_tests(void);
void run_pgstore_tests(void);
void run_store_layer_tests(void);
void run_reconcile_tests(void);
void run_reconcile_plan_tests(void);
void run_roster_feed_tests(void);
void run_audit_view_tests(void);
void run_audit_chart_tests(void);
void run_offline_tests(void);
void run_room_shape_tests(void);
void run_groups_tests(void);
void run_groups_api_tests(void);

#endif
