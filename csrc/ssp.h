/*
 * synapse-school-policy engine: the public API, as includes of the headers
 * of the files that define it. The CPython binding (csrc/py/) includes
 * this; the C unit tests and fuzz targets include ssp_private.h. The
 * engine's own files include only the headers they use.
 *
 * Conventions at this boundary:
 * - Functions that can fail take an `ssp_error *` and return 0 on success or
 *   -1 on failure, with err->message naming the bad key or input.
 * - Strings passed in are borrowed: the engine copies what it keeps.
 * - Strings handed out as `char *` are owned by the caller and freed with
 *   free(). `const char *` results point at static storage.
 * - The engine is thread-safe: decisions may run on one thread while roster
 *   writes and audit queries run on others. None of these functions touch
 *   the Python runtime, so the binding may call them without the GIL.
 */
#ifndef SSP_H
#define SSP_H

#include "audit.h"           /* the wait for a record, flush, counters, queries, purge */
#include "audit_record.h"    /* a denial's or an action's record */
#include "audit_view.h"      /* the audit for its readers */
#include "config.h"          /* ssp_config_check */
#include "engine.h"          /* lifecycle, the command line's open and sync, store status */
#include "error.h"           /* ssp_error */
#include "groups.h"          /* the group API (courses, teams, classes) */
#include "reconcile.h"       /* the reconcile state */
#include "reconcile_plan.h"  /* the special rooms' targets */
#include "roster.h"          /* the roster API */
#include "roster_feed_api.h" /* the roster feed */
#include "rules/after_the_fact.h" /* what is taken back after the fact */
#include "rules/decide.h"    /* requests and decisions */
#include "rules/matrix.h"    /* Matrix facts the rules depend on */
#include "rules/power_levels.h" /* the power-levels patch */
#include "rules/room_shape.h"   /* the shape of new rooms (jansson values) */
#include "rule_texts.h"     /* rule ids and callback names */
#include "selfcheck.h"       /* the homeserver.yaml self-check */

#endif
